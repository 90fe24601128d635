"""The email channel's headers for one-to-one mail (a reply written in WAS)
and for mailings: a personal message carries no list headers and is From the
mailbox it is sent from, with its thread; advertising keeps List-Unsubscribe
whatever its variables say."""

from __future__ import annotations

import email
import email.policy

from ums.templates import EmailSkeleton

FREE_FORM = {"id": 1, "version": 1, "name": "ums-message", "subject": "{{ subject }}",
             "body_text": "{{ body_text }}", "body_html": None}


def built(kind: str, variables: dict, sender=None, list_headers=True):
    skeleton = EmailSkeleton(FREE_FORM, kind, "UMS", "noreply@ums.local")
    raw = skeleton.build("<d1@ums.local>", "kim@example.com", {"subject": "Re: card", "body_text": "Posted.",
                                                                 **variables},
                         "unsubscribe+t@ums.local", "https://ums.example/unsubscribe/t",
                         extra_headers={"In-Reply-To": "<q1@example.com>", "Reply-To": "support@ums.local"},
                         sender=sender, list_headers=list_headers)
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_one_to_one_mail_is_from_the_mailbox_with_its_thread_and_no_list_headers():
    sent = built("transactional", {}, sender=("UMS", "support@ums.local"), list_headers=False)
    assert sent["From"].addresses[0].addr_spec == "support@ums.local"
    assert sent["Reply-To"] == "support@ums.local" and sent["In-Reply-To"] == "<q1@example.com>"
    assert sent["List-Unsubscribe"] is None and sent["List-Unsubscribe-Post"] is None
    assert sent.get_content().strip() == "Posted."


def test_a_mailing_keeps_its_sender_and_list_headers():
    sent = built("transactional", {})
    assert sent["From"].addresses[0].addr_spec == "noreply@ums.local"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_advertising_always_carries_the_refusal_headers():
    sent = built("advertising", {}, sender=("UMS", "support@ums.local"), list_headers=False)
    assert "unsubscribe+t@ums.local" in sent["List-Unsubscribe"]
    assert sent["Subject"].startswith("(광고)")


def test_a_non_ascii_sender_name_is_encoded():
    sent = built("transactional", {}, sender=("유엠에스 은행", "support@ums.local"), list_headers=False)
    assert sent["From"].addresses[0].display_name == "유엠에스 은행"
    assert sent["From"].addresses[0].addr_spec == "support@ums.local"
