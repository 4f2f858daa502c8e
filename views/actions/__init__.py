"""Operator actions in the UI: the fix dialog and its flow, bulk runs, the pending actions, the
operator, and who may run which fix.

The service enforces roles; these widgets only reflect them (auditors see every fix disabled).
Everything from an external system is shown as plain text.
"""
