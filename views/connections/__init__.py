"""The Connections dialog (profiles, their systems and credentials, Test connection with its
checklist), the first-run welcome and the DEMO labelling of the main window."""
