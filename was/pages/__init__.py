"""The HTML pages of WAS, one module per area; importing them registers their routes."""
