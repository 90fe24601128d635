"""WAS — the web application server: pages, /api, one-click unsubscribe, /metrics."""
