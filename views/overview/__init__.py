"""The Overview page, the console's landing page: the headline metrics as tiles (their change
against the previous period, SLA breaches marked), QtCharts charts of the trends, the ageing of
open exceptions, posting latency and freshness, and the desktop alert a refresh raises."""
