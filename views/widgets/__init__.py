"""Shared view pieces, by theme: text (labels, tooltips, values), icons and colours, the banner,
read-only tables (their look, the base table model, the empty state), an exception's sides."""
