"""pubg.load on crafted and unusual files: bounded in time and memory, every failure a short
PubgFormatError naming the file, and the formats and line endings contestants use.

What could hang or eat memory runs in a subprocess with a timeout and an address-space limit.
"""
import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import textwrap
import zipfile

import pandas as pd
import pytest

from ourdl.datasets import pubg

from helpers import REAL_CSV, REAL_TEST_CSV

HEADER = ",".join(pubg.TRAIN_COLUMNS)
MEMORY_LIMIT = 1 << 30  # bytes of address space: numpy and pandas need ~0.5 GB of it to start


def load_in_subprocess(path, setup="", timeout=60):
    """(exit code, stderr) of pubg.load(path) in a fresh interpreter with limited memory."""
    script = textwrap.dedent(f"""
        import resource, sys
        from ourdl.datasets import pubg
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
        {setup}
        try:
            pubg.load({str(path)!r})
        except pubg.PubgFormatError as error:
            sys.exit(f"PubgFormatError: {{error}}")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stderr.strip()


def plain_file(folder):
    path = folder / "plain.csv"
    path.write_text(REAL_CSV)
    return path


# --- limits: time, memory, sizes -----------------------------------------------------------

def test_a_zip_bomb_is_refused_before_it_expands(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("pubg_train.csv", "w", force_zip64=True) as member:
            member.write((HEADER + "\n").encode())
            zeros = bytes(1 << 20)
            for _ in range((pubg.MAX_TEXT_BYTES >> 20) + 1):
                member.write(zeros)
    assert bomb.stat().st_size < 2 << 20
    code, err = load_in_subprocess(bomb, timeout=10)
    assert code == 1 and err.endswith("bomb.zip:pubg_train.csv: holds more than 512 MiB of "
                                      "text, far more than the real pubg_train.csv (about "
                                      "110 MB); not read"), err


def test_a_gzip_bomb_stops_at_the_limit(tmp_path):
    rows = REAL_CSV.split("\n", 1)[1].encode()
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb") as file:
        file.write((HEADER + "\n").encode())
        for _ in range((20 << 20) // len(rows)):
            file.write(rows)
    code, err = load_in_subprocess(bomb, setup="pubg.MAX_TEXT_BYTES = 10 << 20", timeout=30)
    assert code == 1 and "bomb.csv.gz: holds more than 10 MiB of text" in err, err


def test_a_body_without_line_breaks_stops_at_the_first_megabyte(tmp_path):
    bomb = tmp_path / "zeros.csv.gz"
    with gzip.open(bomb, "wb") as file:
        file.write((HEADER + "\n").encode() + bytes(300 << 20))
    code, err = load_in_subprocess(bomb, timeout=30)
    assert code == 1 and "zeros.csv.gz: has a line longer than 1 MiB" in err, err


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_devices_and_pipes_are_refused_without_reading(tmp_path, special):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)  # nobody writes it: reading it would wait forever
    code, err = load_in_subprocess(special, timeout=30)
    assert code == 1 and err.endswith(f"{special}: is not a regular file; give a CSV or zip "
                                      f"file"), err


def test_a_huge_header_fails_fast_with_a_short_message(tmp_path):
    path = tmp_path / "wide.csv"
    extra = ",".join(f"extra{i}" for i in range(1_000_000))
    path.write_text(f"{HEADER},{extra}\n" + "0," * 1_000_016 + "\n")
    code, err = load_in_subprocess(path, timeout=30)
    assert code == 1 and "the first line is longer than 64 KiB" in err and len(err) < 300, err
    path.write_text(f"{HEADER},{extra[:50_000]}\n")  # under the line limit: listed in short
    with pytest.raises(pubg.PubgFormatError, match=r"unexpected column\(s\) 'extra0', .* and "
                                                   r"[\d,]+ more \(a pubg_train") as raised:
        pubg.load(path)
    assert len(str(raised.value)) < 600


# --- every failure a PubgFormatError naming the file ---------------------------------------

def zip_with_flags(path, flag_bits=0, method=None):
    """A zip of REAL_CSV whose headers were patched to say encrypted / another method."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pubg_train.csv", REAL_CSV)
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        data[at + flag_offset] |= flag_bits
        if method is not None:
            data[at + flag_offset + 2:at + flag_offset + 4] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def test_encrypted_and_unreadable_zip_members(tmp_path):
    with pytest.raises(pubg.PubgFormatError, match="locked.zip:pubg_train.csv: is encrypted; "
                                                   "unzip it with its password"):
        pubg.load(zip_with_flags(tmp_path / "locked.zip", flag_bits=1))
    with pytest.raises(pubg.PubgFormatError, match="odd.zip:pubg_train.csv: is compressed with "
                                                   "zip method 9, which Python cannot read"):
        pubg.load(zip_with_flags(tmp_path / "odd.zip", method=9))  # deflate64


@pytest.mark.parametrize("opener, suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2"),
                                            (lzma.open, ".xz")])
def test_damaged_compressed_files(tmp_path, opener, suffix):
    path = tmp_path / f"pubg_train.csv{suffix}"
    with opener(path, "wb") as file:
        file.write(REAL_CSV.encode() * 100)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(pubg.PubgFormatError, match=f"pubg_train.csv{suffix}: could not be read; "
                                                   f"it is damaged or truncated"):
        pubg.load(path)


@pytest.mark.parametrize("newline", ["\r", "\r\n"])
def test_other_line_endings_load_like_line_feeds(tmp_path, newline):
    path = tmp_path / "pubg_train.csv"
    path.write_bytes(REAL_CSV.replace("\n", newline).encode())
    pd.testing.assert_frame_equal(pubg.load(path), pubg.load(plain_file(tmp_path)))
    cut = REAL_CSV[:-12].replace("\n", newline)
    path.write_bytes(cut.encode())
    with pytest.raises(pubg.PubgFormatError, match="line 6, the last line, has 10 fields"):
        pubg.load(path)


def test_quoted_fields_and_quoted_line_breaks(tmp_path):
    path = tmp_path / "pubg_train.csv"
    quoted = REAL_CSV.replace(",218,", ',"218",')
    path.write_text(quoted)
    assert pubg.load(path)["player_dmg"].tolist() == [218, 125, 0, 41, 69]
    path.write_text(REAL_CSV.replace(",125,", ',"12\n5",'))  # one field, not a short line
    with pytest.raises(pubg.PubgFormatError,
                       match=r"data row 2: '12\\n5' is not a number in column player_dmg"):
        pubg.load(path)
    path.write_text(quoted.replace(",5\n0,2", "\n0,2", 1))
    with pytest.raises(pubg.PubgFormatError, match="line 3 has 15 fields instead of 16$"):
        pubg.load(path)


def test_blank_lines_are_skipped_as_pandas_does(tmp_path):
    path = tmp_path / "pubg_train.csv"
    path.write_text(REAL_CSV.replace("\n0,2,", "\n\n  \n0,2,", 1) + "\n")
    pd.testing.assert_frame_equal(pubg.load(path), pubg.load(plain_file(tmp_path)))


# --- the formats contestants use, messages that point to the fix --------------------------

@pytest.mark.parametrize("opener, name", [
    (gzip.open, "pubg_test.csv.gz"), (bz2.open, "pubg_test.csv.bz2"),
    (lzma.open, "pubg_test.csv.xz"), (gzip.open, "renamed.csv"),
])
def test_compressed_files_load(tmp_path, opener, name):
    with opener(tmp_path / name, "wb") as file:
        file.write(REAL_TEST_CSV.encode())
    plain = tmp_path / "pubg_test.csv"
    plain.write_text(REAL_TEST_CSV)
    pd.testing.assert_frame_equal(pubg.load(tmp_path / name), pubg.load(plain))


@pytest.mark.parametrize("separator, called", [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(tmp_path, separator, called):
    path = tmp_path / "pubg_train.csv"
    pd.read_csv(io.StringIO(REAL_CSV)).to_csv(path, sep=separator, index=False)
    with pytest.raises(pubg.PubgFormatError) as raised:
        pubg.load(path)
    assert str(raised.value) == (f"{path}: the fields are separated by {called}, not commas; "
                                 f"save it comma-separated (pandas: df.to_csv(path, index=False))")


def test_a_pandas_index_column_suggests_index_false(tmp_path):
    path = tmp_path / "pubg_train.csv"
    frame = pd.read_csv(io.StringIO(REAL_CSV))
    frame.to_csv(path)  # index=True, the default
    with pytest.raises(pubg.PubgFormatError, match=r"the first column, '', looks like a pandas "
                                                   r"index; save the file with df.to_csv\(path, "
                                                   r"index=False\)"):
        pubg.load(path)
    pd.read_csv(path).to_csv(path, index=False)  # read back: the column is now 'Unnamed: 0'
    with pytest.raises(pubg.PubgFormatError, match="the first column, 'Unnamed: 0', looks like"):
        pubg.load(path)
