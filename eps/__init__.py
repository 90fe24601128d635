"""EPS — the event processing server: back-office events over HTTP and TCP telegrams."""
