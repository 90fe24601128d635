"""Address books scoped to who owns them, over real HTTP on loopback (issue
#13, must-show 4): alice's personal book, a book alice shares with bob only,
an organisation book and a contact in no book; each of alice, bob, an
operator, an admin and an API key lists, searches, opens and exports exactly
what the sharing model gives them — in the pages and in /api/v1."""

from __future__ import annotations

import json

import pytest
from was_site import PASSWORD, api_key

from ums.security import hash_password
from ums.store import addressbooks, users
from ums.store.addressbooks import ADMINISTRATOR

NAMES = ("Private Park", "Shared Seo", "Org Oh", "Loose Lee")


async def make_contact(client, name: str, email: str, book_id: int | None = None, **more) -> int:
    fields = {"name": name, "email": email, **({"books": str(book_id)} if book_id else {}), **more}
    saved = await client.post_form("/contacts/save", fields, page="/contacts/new")
    assert saved.status == 303, saved.text
    return int(saved.headers["Location"].split("?")[0].rsplit("/", 1)[1])


async def make_book(client, name: str, scope: str, **sharing) -> int:
    made = await client.post_form("/contacts/books", {"name": name, "scope": scope, **sharing}, page="/contacts")
    assert made.status == 303, made.text
    return int(made.headers["Location"].split("book=")[1].split("&")[0])


@pytest.fixture
async def books(site):
    """Alice's and bob's logins, the three books and the four contacts."""
    async with site.ctx.db.begin() as conn:
        for name in ("alice", "bob"):
            site.user_ids[name] = await users.create(conn, name, hash_password(PASSWORD), "user",
                                                     display_name=name.title())
    alice, bob = await site.logged_in("alice"), await site.logged_in("bob")
    ids = {"private_book": await make_book(alice, "Alice private", "personal"),
           "shared_book": await make_book(alice, "For Bob", "shared", share_users=str(site.user_ids["bob"]))}
    ids["Private Park"] = await make_contact(alice, "Private Park", "park@example.com", ids["private_book"],
                                            customer_id="C-ALICE")
    ids["Shared Seo"] = await make_contact(alice, "Shared Seo", "seo@example.com", ids["shared_book"])
    marketer = await site.logged_in("marketer")
    ids["org_book"] = await make_book(marketer, "Bank customers", "organisation")
    ids["Org Oh"] = await make_contact(marketer, "Org Oh", "oh@example.com", ids["org_book"])
    ids["Loose Lee"] = await make_contact(marketer, "Loose Lee", "lee@example.com")
    return alice, bob, ids


async def api_names(client, query: str = "", **headers) -> set[str]:
    reply = await client.get("/api/v1/contacts" + query, **headers)
    assert reply.status == 200, reply.text
    return {row["name"] for row in json.loads(reply.body)["contact"]}


def page_names(text: str) -> set[str]:
    return {name for name in NAMES if name in text}


async def test_bob_sees_only_what_alice_shared_with_him(site, books):
    alice, bob, ids = books
    assert await api_names(bob) == {"Shared Seo"}
    assert await api_names(bob, "?q=park") == set() and await api_names(bob, "?q=seo") == {"Shared Seo"}
    assert await api_names(bob, f"?id={ids['Shared Seo']}") == {"Shared Seo"}
    for other in ("Private Park", "Org Oh", "Loose Lee"):
        assert (await bob.get(f"/api/v1/contacts?id={ids[other]}")).status == 404
    assert (await bob.get(f"/api/v1/contacts?book={ids['private_book']}")).status == 404
    for bad in ("?id=abc", "?id=99999999999999999999", "?book=-1"):
        reply = await bob.get("/api/v1/contacts" + bad)
        assert reply.status == 404 and json.loads(reply.body)["reason"].startswith("no such"), bad
    as_xml = await bob.get("/api/v1/contacts?format=xml")
    assert b"<name>Shared Seo</name>" in as_xml.body and b"Private Park" not in as_xml.body

    listing = await bob.get("/contacts")
    assert page_names(listing.text) == {"Shared Seo"}
    assert "For Bob" in listing.text and "Alice private" not in listing.text and "Bank customers" not in listing.text
    assert "No contacts match" in (await bob.get("/contacts?q=park")).text
    assert (await bob.get(f"/contacts?book={ids['private_book']}")).status == 404
    for fmt in ("csv", "vcard&version=4.0", "vcard&version=3.0"):
        exported = await bob.get(f"/contacts/export?format={fmt}")
        assert exported.status == 200 and page_names(exported.text) == {"Shared Seo"}, fmt
    assert (await bob.get(f"/contacts/export?book={ids['org_book']}")).status == 404
    assert (await bob.get(f"/contacts/{ids['Shared Seo']}")).status == 200
    for other in ("Private Park", "Org Oh", "Loose Lee"):
        assert (await bob.get(f"/contacts/{ids[other]}")).status == 404


async def test_bob_cannot_change_or_reach_alices_contacts(site, books):
    alice, bob, ids = books
    edited = await bob.post_form("/contacts/save", {"id": str(ids["Private Park"]), "name": "Bob was here",
                                                    "email": "park@example.com"}, page="/contacts/new")
    assert edited.status == 404
    added = await bob.post_form("/contacts/save", {"name": "Sneaky", "email": "s@example.com",
                                                   "books": str(ids["private_book"])}, page="/contacts/new")
    assert added.status == 404
    # importing alice's contact's address makes bob a contact of his own, revealing nothing of hers
    token = (await bob.get("/contacts")).csrf()
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\ncustomer_id,name,email\r\n,My Park,park@example.com\r\n"
            f"C-ALICE,Guess,guess@example.com\r\n--{boundary}--\r\n").encode()
    imported = await bob.request("POST", "/contacts/import", body,
                                 {"content-type": f"multipart/form-data; boundary={boundary}"})
    assert imported.status == 200 and "1 added</span>, 0 updated" in imported.text, imported.text
    assert "<td>3</td><td class=\"bad\">Customer number &#39;C-ALICE&#39; already belongs to a contact you cannot see." \
        in imported.text
    assert await api_names(bob, "?q=park") == {"My Park"}
    assert await api_names(alice, "?q=park") == {"Private Park"}
    # sharing is changed by whoever made the book (or an admin), not by whom it is shared with
    refused = await bob.post_form("/contacts/books", {"id": str(ids["shared_book"]), "share_roles": "user"},
                                  page="/contacts")
    assert refused.status == 403
    # bob's API session lists only his own and the shared contacts
    assert await api_names(bob) == {"Shared Seo", "My Park"}


async def test_each_viewer_sees_its_own_share(site, books):
    alice, bob, ids = books
    assert await api_names(alice) == {"Private Park", "Shared Seo"}
    assert page_names((await alice.get("/contacts")).text) == {"Private Park", "Shared Seo"}
    operator = await site.logged_in("operator")
    assert await api_names(operator) == {"Org Oh", "Loose Lee"}
    assert page_names((await operator.get("/contacts/export?format=csv")).text) == {"Org Oh", "Loose Lee"}
    admin = await site.logged_in("admin")
    # an admin sees shared books (to manage them), never another's personal book
    assert await api_names(admin) == {"Shared Seo", "Org Oh", "Loose Lee"}
    assert (await admin.get(f"/contacts/{ids['Private Park']}")).status == 404
    key = await api_key(site.ctx, scopes=["contacts"])
    assert await api_names(site.client(), **{"x-api-key": key}) == {"Org Oh", "Loose Lee"}

    # alice shares her book with role "api" and with the operators; the page shows it
    shared = await alice.post_form("/contacts/books", {"id": str(ids["shared_book"]),
                                                       "share_roles": ["api", "operator"],
                                                       "share_users": str(site.user_ids["bob"])}, page="/contacts")
    assert shared.status == 303, shared.text
    page = await alice.get(f"/contacts?book={ids['shared_book']}")
    assert "shared with api, operator, bob" in page.text
    assert await api_names(site.client(), **{"x-api-key": key}) == {"Shared Seo", "Org Oh", "Loose Lee"}
    assert await api_names(operator) == {"Shared Seo", "Org Oh", "Loose Lee"}
    # and shares the organisation book with bob only through an admin
    assert (await alice.post_form("/contacts/books", {"id": str(ids["org_book"]), "share_users": "1"},
                                  page="/contacts")).status == 404
    opened = await admin.post_form("/contacts/books", {"id": str(ids["org_book"]),
                                                       "share_users": str(site.user_ids["bob"])}, page="/contacts")
    assert opened.status == 303
    assert await api_names(bob) == {"Shared Seo", "Org Oh"}
    assert await api_names(alice) == {"Private Park", "Shared Seo"}


async def test_a_mailbox_users_contact_without_a_book_stays_theirs(site, books):
    alice, bob, ids = books
    made = await make_contact(bob, "Bob's dentist", "dentist@example.com")
    assert (await bob.get(f"/contacts/{made}")).status == 200
    assert (await alice.get(f"/contacts/{made}")).status == 404
    async with site.ctx.db.connect() as conn:
        own = [b for b in await addressbooks.visible_books(conn, addressbooks.Viewer(site.user_ids["bob"], "user"))
               if b["scope"] == "personal"]
        everyone = await addressbooks.search(conn, ADMINISTRATOR, "dentist")
    assert [b["name"] for b in own] == [addressbooks.OWN_BOOK] and len(everyone) == 1


async def test_sharing_input_is_checked(site, books):
    alice, bob, ids = books
    bad_role = await alice.post_form("/contacts/books", {"id": str(ids["shared_book"]), "share_roles": "root"},
                                     page="/contacts")
    assert bad_role.status == 400 and "share with the roles" in bad_role.text
    no_user = await alice.post_form("/contacts/books", {"id": str(ids["shared_book"]), "share_users": "99999"},
                                    page="/contacts")
    assert no_user.status == 400 and "no such user" in no_user.text
    personal = await alice.post_form("/contacts/books", {"name": "Mine", "scope": "personal", "share_roles": "user"},
                                     page="/contacts")
    assert personal.status == 400 and "yours alone" in personal.text
