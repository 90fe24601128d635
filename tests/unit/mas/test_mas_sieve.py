"""Sieve: every construct the rules engine supports, on messages in several charsets."""

import pytest

from ums.inbound import InboundMessage
from ums.sieve import SieveError, check, compile_script, evaluate

from tests.unit.mas import mas_samples as samples


def message(subject="hello", charset="utf-8", sender="Hong <hong@customer.example>", to="sales@bank.example",
            body="body\n", envelope_from="hong@customer.example", **headers) -> InboundMessage:
    raw = samples.text_message(sender, to, subject, body, charset=charset, **headers)
    return InboundMessage(raw, envelope_from, [to])


def run(script, msg=None, recipient="sales@bank.example"):
    return evaluate([compile_script(script)], msg or message(), recipient)


@pytest.mark.parametrize("charset", ["utf-8", "euc-kr", "iso-2022-kr", "cp949"])
def test_header_tests_see_decoded_korean_in_any_charset(charset):
    verdict = run('require "fileinto"; if header :contains "subject" "수신거부" { fileinto "Refusals"; }',
                  message("광고 수신거부", charset=charset))
    assert verdict.folders == {"Refusals": []}


@pytest.mark.parametrize("charset", ["iso-8859-1", "shift_jis", "koi8-r"])
def test_header_tests_in_other_charsets(charset):
    text = {"iso-8859-1": "Réponse déjà", "shift_jis": "お問い合わせ", "koi8-r": "Ответ"}[charset]
    verdict = run(f'require "fileinto"; if header :is "subject" "{text}" {{ fileinto "Match"; }}',
                  message(text, charset=charset))
    assert "Match" in verdict.folders


def test_match_types_and_comparators():
    msg = message("Re: Loan Offer")
    assert "A" in run('require "fileinto"; if header :is "subject" "re: loan offer" { fileinto "A"; }', msg).folders
    assert "A" not in run('require "fileinto"; if header :comparator "i;octet" :is "subject" "re: loan offer" '
                          '{ fileinto "A"; }', msg).folders
    assert "A" in run('require ["fileinto", "comparator-i;octet"]; if header :comparator "i;octet" '
                      ':contains "subject" "Loan" { fileinto "A"; }', msg).folders
    assert "A" in run('require "fileinto"; if header :matches "subject" "re: * off?r" { fileinto "A"; }', msg).folders
    assert "A" not in run('require "fileinto"; if header :matches "subject" "loan*" { fileinto "A"; }', msg).folders
    assert "A" in run('require "fileinto"; if header :matches "subject" "*\\\\?*" { fileinto "A"; }',
                      message("why?")).folders


def test_address_parts_and_envelope():
    msg = message(sender="=?utf-8?b?7ZmN6ri464+Z?= <Hong@Customer.Example>")
    script = '''require ["fileinto", "envelope"];
    if address :localpart :is "from" "hong" { fileinto "L"; }
    if address :domain :is "from" "customer.example" { fileinto "D"; }
    if address :all :contains "from" "hong@" { fileinto "A"; }
    if envelope :domain :is "from" "customer.example" { fileinto "EF"; }
    if envelope :localpart :is "to" "sales" { fileinto "ET"; }
    if envelope :all :is "to" "other@bank.example" { fileinto "Wrong"; }
    '''
    assert set(run(script, msg).folders) == {"L", "D", "A", "EF", "ET"}


def test_exists_size_allof_anyof_not_true_false():
    msg = message(X_Priority="1", body="x" * 2000)
    script = '''require "fileinto";
    if allof (exists ["x-priority", "subject"], size :over 1K, not size :over 1M) { fileinto "Big"; }
    if anyof (false, exists "x-missing") { fileinto "Never"; }
    if not anyof (false, false) { fileinto "Not"; }
    if true { fileinto "True"; }
    if exists "x-missing" { fileinto "Never"; }
    if size :under 10 { fileinto "Never"; }
    '''
    assert set(run(script, msg).folders) == {"Big", "Not", "True"}


def test_if_elsif_else_and_stop():
    script = '''require "fileinto";
    if header :contains "subject" "alpha" { fileinto "A"; }
    elsif header :contains "subject" "beta" { fileinto "B"; stop; }
    else { fileinto "C"; }
    fileinto "After";
    '''
    assert set(run(script, message("alpha")).folders) == {"A", "After"}
    assert set(run(script, message("beta")).folders) == {"B"}
    assert set(run(script, message("gamma")).folders) == {"C", "After"}


def test_keep_discard_redirect_reject():
    assert run("keep;").folders == {"INBOX": []}
    discarded = run("discard;")
    assert discarded.folders == {} and discarded.discarded
    assert run('redirect "ops@bank.example";').redirects == ["ops@bank.example"]
    assert run('redirect "ops@bank.example"; keep;').folders == {"INBOX": []}
    rejected = run('require "reject"; reject "No advertising here";')
    assert rejected.reject == "No advertising here" and rejected.folders == {}
    assert run("").folders == {"INBOX": []}  # implicit keep


def test_imap4flags():
    script = '''require ["imap4flags", "fileinto"];
    setflag "\\\\Seen";
    addflag ["\\\\Flagged", "$Customer"];
    fileinto "A";
    removeflag "\\\\Seen";
    if hasflag :is "$customer" { fileinto :flags "\\\\Answered" "B"; }
    keep;
    '''
    verdict = run(script)
    assert verdict.folders == {"A": ["\\Seen", "\\Flagged", "$Customer"], "B": ["\\Answered"],
                               "INBOX": ["\\Flagged", "$Customer"]}


def test_enotify():
    verdict = run('require "enotify"; notify :importance "1" :message "새 메일" "mailto:owner@bank.example";')
    [note] = verdict.notifications
    assert (note.method, note.message, note.importance) == ("mailto:owner@bank.example", "새 메일", "1")


def test_site_script_runs_first_and_its_stop_ends_the_run():
    site = compile_script('require "fileinto"; if header :contains "subject" "spam" { fileinto "Junk"; stop; }',
                          name="site")
    own = compile_script('require "fileinto"; fileinto "Mine";', name="own")
    assert set(evaluate([site, own], message("spam offer"), "a@b.c").folders) == {"Junk"}
    assert set(evaluate([site, own], message("hello"), "a@b.c").folders) == {"Mine"}


def test_multiline_strings_and_comments():
    script = (
        "# comment\n"
        'require "reject"; /* block\n'
        "comment */\n"
        "reject text:\n"
        "Line one\n"
        "..dot\n"
        ".\n"
        ";\n"
    )
    assert run(script).reject == "Line one\r\n.dot\r\n"


def test_scripts_are_compiled_once():
    text = 'require "fileinto"; fileinto "Cached";'
    assert compile_script(text).actions is compile_script(text).actions


@pytest.mark.parametrize("script, line, column, words", [
    ('require "fileinto";\nif header :is "subject" {\n  keep;\n}', 2, 4, "header expects"),
    ('if true {\n  keep\n}', 3, 1, "expected ';'"),
    ('fileinto "x";', 1, 1, 'needs require "fileinto"'),
    ('require "vacation";', 1, 1, "unsupported extension"),
    ('if true { keep; }\nelse { keep; }\nelse { keep; }', 3, 1, "else without a preceding if"),
    ('keep;\nif header :contains "subject" "x {\n keep; }', 2, 31, "string is not closed"),
    ('if size :over { keep; }', 1, 9, ":over needs a number"),
    ('if header :comparator "i;unicode" :is "a" "b" { keep; }', 1, 4, "unknown comparator"),
    ('keep;\nbogus;', 2, 1, "unknown command"),
    ('if anyof (true, frob) { keep; }', 1, 17, "unknown test"),
    ('if true {\n keep;\n', 1, 9, "not closed"),
    ('keep;\nrequire "fileinto";', 2, 1, "require must come before"),
])
def test_invalid_scripts_are_refused_with_line_and_column(script, line, column, words):
    with pytest.raises(SieveError) as error:
        check(script)
    assert f"line {line}, column {column}" in str(error.value)
    assert words in str(error.value)
