"""The evidence pack (Qt-free): what SyncDesk knows and did about one customer, or a selection,
as one JSON document a third party can check (``pack.py``); the PDF is rendered from it by
``app/evidence_pdf.py``."""
