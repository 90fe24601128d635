# Site-wide rules: run for every inbound message before the mailbox's own script.
# Refusals of receipt and bounces are recognised before any script runs; these
# rules sort what is left.
require ["fileinto", "imap4flags", "envelope"];

# Mail an upstream filter marked as spam.
if header :contains "X-Spam-Flag" "YES" {
    fileinto "Junk";
    stop;
}

# Out-of-office and other automatic answers to our own mailings. A bounce carries
# Auto-Submitted too (RFC 3834): it stays in Bounces, where MAS files it.
if allof (not envelope :matches "to" "bounce+*",
          not header :contains "Content-Type" "delivery-status",
          anyof (header :matches "Auto-Submitted" "auto-*",
                 header :contains "Subject" ["Out of Office", "자동 회신", "부재중"])) {
    fileinto "Auto-Replies";
    addflag "\\Seen";
    stop;
}
