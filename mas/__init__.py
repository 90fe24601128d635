"""MAS — the message application server: inbound SMTP, rules, refusals, bounces, mailbox."""
