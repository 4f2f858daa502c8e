"""Tryton-compatible demo ERP server: trytond 8.2's JSON-RPC over an :class:`ErpStore`.

Behaviour follows ``shared/specs/tryton/README.md`` (verified against a real trytond 8.2):

- ``POST /<db>/rpc/`` (and ``/<db>/``) with a JSON body of exactly ``id``, ``method`` and
  ``params``; ``POST /rpc/`` answers ``common.server.version`` and ``common.db.list``.
- ``common.db.login [login, {"password": pw}, lang]`` -> ``[user_id, session, null]``; then
  ``Authorization: Session base64("login:user_id:session")`` on every call.
- ``model.<model>.<method>`` with positional params whose last element is the context.
- Errors in three kinds: ``["UserError", [message, description, domain]]`` (and
  ``UserWarning`` / ``LoginException``), ``[str(exception), ""]`` for anything else, and
  bare HTTP errors (401/403/404/422/429, HTML bodies as werkzeug renders them).
- Typed values as ``{"__class__": ...}`` objects (:mod:`services.io.tryton_rpc`).
- ``wizard.account.invoice.credit.create / execute / delete`` (the invoice's *Credit*: the only
  route to ``Invoice.credit``): with refund, a credit note copying the invoice (lines negated,
  their ``origin`` the credited lines, no reference) is posted in the invoice sequence
  (``sequence_type_cache`` = ``credit_note``) and reconciled, so it ends ``paid``, and the
  invoice ends ``cancelled``; an invoice that is not posted is refused as trytond refuses it.
  ``origin_invoices`` (computed, searchable) names the invoices a credit note credits.
- Taxes as trytond computes them (``taxes``): ``account.tax`` (percentage, fixed; groups, dates,
  children), invoice lines' ``taxes``, the invoice's ``account.invoice.tax`` kept by
  ``update_taxes`` when a draft invoice is created or written and checked when it is posted,
  ``untaxed_amount`` / ``tax_amount`` / ``total_amount``, rounding per line (the demo company's
  ``tax_rounding``) or per document, the taxes a line's product proposes (``on_change``: the
  party's customer tax rule, ``account.tax.rule``; the demo's products have no default taxes),
  the ``invoice_taxes`` posting warning for lines whose taxes differ from those (named as
  ``res.user.warning.format`` names it: a record created in the same call, as the credit note the
  Credit wizard posts, by its rank in the call, so an acknowledgement applies), credit notes on
  the credit-note account; ``currency.currency.rate`` and the currency's ``rate``.

Each call runs as one transaction under ``store.lock``: every mutation is journalled and
undone when the call fails, as trytond rolls back its database transaction.

Differences from trytond kept on purpose: the default order of every model is ``id ASC``
(trytond orders invoices by number), ``post`` is instant (trytond renders a report, ~1 s),
failed logins are counted but do not make later logins sleep, there are no account moves
(``cancel_move`` stays empty; no tax lines: a tax's base and tax amounts read 0), and wizard
sessions are kept by the service, not in a table (creating or deleting one is no committed write
for the fault injector).

Speed: equality / ``in`` leaves on indexed fields (``ErpStore.INDEXED``, also through a
many2one path such as ``party.code``) and on ``id`` narrow the candidates before the domain
predicate runs; the incremental-sync domain ``["OR", ["create_date", ">", W],
["write_date", ">", W]]`` is answered from a sorted ``(max(create_date, write_date), id)``
index per model, kept up to date on writes and rebuilt when the table changed behind the
server's back.

The modules, from the wire inwards:

- ``app``: the Starlette app (``create_app``) and its JSON-RPC endpoint;
- ``service``: ``TrytonService``, sessions, login and dispatch;
- ``errors``: the three kinds of error answers;
- ``model_call``: ``ModelCall``, the generic methods every model serves (search, read, create,
  write, delete, ...); ``model_hooks``: the per-model checks they run and ``on_change``;
- ``model_methods``: the model-specific RPC methods; ``invoices``: the invoice sequence, buttons
  and credit; ``wizards``: the *Credit* wizard; ``taxes``: the tax computation and
  ``update_taxes``;
- ``transaction``: the undo journal of one call;
- ``domains``: domain predicates and index candidates; ``watermarks``: the incremental-sync index;
- ``reader``: ``read`` rows; ``values``: stored and computed field values; ``coercion``: client
  values to stored values;
- ``schema``: the served models' fields, labels, defaults and required fields.
"""
