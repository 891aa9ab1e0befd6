"""`CommandStatus` and its outputs (`lago.utils.CommandOutput`) without a VM: what a suite written
for the seed's text (spec §2.3) and one written for the last original's bytes both do with a
result, output that is not UTF-8, repr, unpacking, truth, pickling and copying, and the package's
own producers and consumers."""

import copy
import io
import pickle

import pytest

from lago import sdk, ssh, utils
from lago.plugins import vm as vm_plugins
from lago.utils import CommandOutput, CommandStatus

HOSTNAME = CommandStatus(0, b"vm01.lago.local\n", b"")

#: Not UTF-8: a lone continuation byte, a byte that is never UTF-8, a truncated sequence.
RAW = b"ok \x80 \xff \xe2\x82\nend\n"


def test_repr_is_the_seeds() -> None:
    assert repr(HOSTNAME) == "CommandStatus(code=0, out='vm01.lago.local\\n', err='')"
    assert str(HOSTNAME) == repr(HOSTNAME)
    assert repr(CommandStatus(0, None, None)) == "CommandStatus(code=0, out=None, err=None)"
    assert repr(HOSTNAME.out) == "'vm01.lago.local\\n'"


def test_a_suite_written_for_text_reads_it() -> None:
    res = HOSTNAME
    assert res.code == 0 and not res
    assert res.out == "vm01.lago.local\n" and res.err == ""
    assert not (res.out != "vm01.lago.local\n")
    assert isinstance(res.out, str)
    assert str.strip(res.out) == "vm01.lago.local" and type(str.strip(res.out)) is str
    assert res.out.strip() == "vm01.lago.local"
    assert "lago" in res.out and "nope" not in res.out
    assert res.out.splitlines() == ["vm01.lago.local"]
    assert res.out.split(".") == ["vm01", "lago", "local\n"]
    assert res.out.startswith("vm01") and res.out.count("l") == 3 and res.out.find(".") == 4
    assert res.out.upper() == "VM01.LAGO.LOCAL\n" and type(res.out.upper()) is str
    assert f"{res.out!s}" == "vm01.lago.local\n" and "%s" % res.out == "vm01.lago.local\n"
    assert res == (0, "vm01.lago.local\n", "")
    assert res == sdk.CommandStatus(code=0, out="vm01.lago.local\n", err="")
    assert {res.out: 1}["vm01.lago.local\n"] == 1


def test_a_suite_written_for_the_last_originals_bytes_reads_it() -> None:
    res = HOSTNAME
    assert res.out.decode("utf-8") == res.out.decode() == res.out.decode("utf-8", "replace") == "vm01.lago.local\n"
    assert type(res.out.decode()) is str
    assert res.out.decode("utf-8").strip() == "vm01.lago.local"
    assert res.err.decode("utf-8") == ""
    assert bytes(res.out) == b"vm01.lago.local\n" and bytes(res.err) == b""
    assert res.out == b"vm01.lago.local\n" and not (res.out != b"vm01.lago.local\n")
    assert res.out != b"other" and res.out == bytearray(b"vm01.lago.local\n")
    assert res == (0, b"vm01.lago.local\n", b"") and (0, b"vm01.lago.local\n", b"") == res
    assert res == sdk.CommandStatus(code=0, out=b"vm01.lago.local\n", err=b"")
    assert b"lago" in res.out and b"nope" not in res.out
    assert res.out.count(b"l") == 3 and res.out.find(b".") == 4 and res.out.rfind(b".") == 9
    assert res.out.index(b"lago") == 5 and res.out.rindex(b"l") == 14
    assert res.out.startswith(b"vm01") and res.out.endswith((b"x", b"\n"))
    # Pieces are outputs too: they compare with bytes and decode.
    assert res.out.strip() == b"vm01.lago.local" and res.out.strip().decode() == "vm01.lago.local"
    assert res.out.rstrip(b"\n") == b"vm01.lago.local" and res.out.lstrip(b"vm") == b"01.lago.local\n"
    assert res.out.splitlines() == [b"vm01.lago.local"]
    assert res.out.split(b".") == [b"vm01", b"lago", b"local\n"] and res.out.rsplit(b".", 1)[1] == b"local\n"
    assert res.out.partition(b".") == (b"vm01", b".", b"lago.local\n")
    assert res.out.rpartition(".")[0].decode() == "vm01.lago"
    assert sorted(CommandOutput(b"b\na\n").splitlines()) == [b"a", b"b"]


def test_output_that_is_not_utf8_keeps_its_bytes() -> None:
    res = CommandStatus(2, RAW, b"\xfe")
    # The text: every invalid sequence replaced, as bytes.decode('utf-8', 'replace') does.
    assert res.out == RAW.decode("utf-8", "replace") == "ok \ufffd \ufffd \ufffd\nend\n"
    assert res.err == "\ufffd"
    assert repr(res) == "CommandStatus(code=2, out='ok \ufffd \ufffd \ufffd\\nend\\n', err='\ufffd')"
    # It prints and writes without an error, to a strict UTF-8 stream too.
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    print(res.out, res.err, file=stream)
    stream.flush()
    # The bytes: decode is bytes.decode, raising where it raised.
    with pytest.raises(UnicodeDecodeError) as raised:
        res.out.decode("utf-8")
    with pytest.raises(UnicodeDecodeError) as expected:
        RAW.decode("utf-8")
    assert str(raised.value) == str(expected.value)
    with pytest.raises(UnicodeDecodeError):
        res.out.decode()
    with pytest.raises(UnicodeDecodeError):
        res.err.decode()
    for args in (("utf-8", "replace"), ("utf-8", "ignore"), ("utf-8", "surrogateescape"), ("latin-1",),
                 ("utf-8", "backslashreplace")):
        assert res.out.decode(*args) == RAW.decode(*args), args
    assert res.out.decode(errors="replace") == RAW.decode(errors="replace")
    assert bytes(res.out) == RAW and bytes(res.err) == b"\xfe"
    assert res.out == RAW and b"\xff" in res.out and res.out.count(b"\x80") == 1
    # Pieces are cut from the bytes, not from the replaced text.
    first = res.out.splitlines()[0]
    assert bytes(first) == b"ok \x80 \xff \xe2\x82" and first == "ok \ufffd \ufffd \ufffd"
    assert [bytes(p) for p in res.out.split()] == RAW.split()
    assert [str(p) for p in res.out.split()] == str(res.out).split()
    with pytest.raises(UnicodeDecodeError):
        res.out.strip().decode()
    # Two different invalid outputs with the same replaced text are different outputs.
    assert CommandOutput(b"\xff") != CommandOutput(b"\xfe") and CommandOutput(b"\xff") == "\ufffd"


def test_unpacking_indexing_and_truth() -> None:
    code, out, err = HOSTNAME
    assert (code, out, err) == (0, "vm01.lago.local\n", "") and (code, out, err) == (0, b"vm01.lago.local\n", b"")
    assert HOSTNAME[0] == 0 and HOSTNAME[1] is HOSTNAME.out and HOSTNAME[-1] is HOSTNAME.err
    assert len(HOSTNAME) == 3 and list(HOSTNAME) == [0, "vm01.lago.local\n", ""]
    assert HOSTNAME._fields == ("code", "out", "err")
    assert HOSTNAME._asdict() == {"code": 0, "out": "vm01.lago.local\n", "err": ""}
    # True when the command failed, whatever it wrote.
    assert not HOSTNAME and not CommandStatus(0, b"", b"oops")
    assert CommandStatus(1, b"", b"") and CommandStatus(255, b"out", b"err")
    assert bool(CommandStatus(0, None, None)) is False
    assert isinstance(HOSTNAME, tuple) and isinstance(HOSTNAME, utils._CommandStatus)


def test_every_way_of_building_one_gives_outputs() -> None:
    for status in (CommandStatus(0, b"x", b""), CommandStatus(0, "x", ""), CommandStatus(code=0, out=bytearray(b"x"), err=b""),
                   CommandStatus._make([0, b"x", b""]), HOSTNAME._replace(out=b"x", err="")):
        assert type(status) is CommandStatus
        assert type(status.out) is CommandOutput and type(status.err) is CommandOutput
        assert status.out == "x" and bytes(status.out) == b"x"
    assert CommandStatus(0, None, None).out is None
    assert CommandOutput("é") == "é" and bytes(CommandOutput("é")) == "é".encode()
    # Text with surrogateescape'd bytes gives those bytes back.
    assert bytes(CommandOutput(b"\xff".decode("utf-8", "surrogateescape"))) == b"\xff"
    assert CommandOutput() == "" and CommandOutput(CommandOutput(b"\xff")) == b"\xff"
    with pytest.raises(TypeError):
        CommandOutput(42)
    with pytest.raises(TypeError):
        CommandStatus(0, b"")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_keeps_the_bytes(protocol: int) -> None:
    res = CommandStatus(3, RAW, b"err\n")
    again = pickle.loads(pickle.dumps(res, protocol))
    assert type(again) is CommandStatus and type(again.out) is CommandOutput
    assert again == res and again.code == 3 and bool(again)
    assert bytes(again.out) == RAW and bytes(again.err) == b"err\n"
    assert bytes(pickle.loads(pickle.dumps(res.out, protocol))) == RAW


def test_copying_keeps_the_bytes() -> None:
    res = CommandStatus(0, RAW, b"")
    for again in (copy.copy(res), copy.deepcopy(res)):
        assert type(again.out) is CommandOutput and bytes(again.out) == RAW
    assert bytes(copy.copy(res.out)) == RAW and bytes(copy.deepcopy(res.out)) == RAW


def test_it_hashes_as_its_text() -> None:
    out = CommandOutput(b"vm01\n")
    assert hash(out) == hash("vm01\n")
    assert {"vm01\n": "found"}[out] == "found" and out in {"vm01\n"}
    assert len({CommandOutput(b"a"), CommandOutput(b"a"), "a"}) == 1


def test_run_command_gives_outputs_of_its_bytes() -> None:
    res = utils.run_command(["printf", r"\377text\n"])
    assert res.code == 0 and not res and type(res.out) is CommandOutput
    assert bytes(res.out) == b"\xfftext\n" and res.out == "\ufffdtext\n"
    assert res.out.decode("latin-1") == "\xfftext\n"
    failed = utils.run_command(["sh", "-c", "echo oops >&2; exit 3"])
    assert failed and failed.code == 3 and failed.err == "oops\n" and failed.err.decode() == "oops\n"
    # An output given as standard input goes on as its bytes, a text as UTF-8.
    assert bytes(utils.run_command(["cat"], input_data=res.out).out) == b"\xfftext\n"
    assert bytes(utils.run_command(["cat"], input_data="é").out) == "é".encode()


def test_the_packages_consumers_read_outputs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(utils, "run_command", lambda command, **kw: CommandStatus(0, b"enabled\n", b""))
    assert utils.service_is_enabled("sshd")
    monkeypatch.setattr(utils, "run_command", lambda command, **kw: CommandStatus(1, b"disabled\n", b""))
    assert not utils.service_is_enabled("sshd")
    for echo in (ssh._echo, vm_plugins._echo):
        echo(CommandStatus(1, b"out \xff\n", b"err\n"))
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("out \ufffd\n", "err\n")
