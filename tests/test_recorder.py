"""Recorder: hourly rotation by receive time, a complete gzip member per flush,
crash safety (kill -9 loses at most the last flush interval), restart appends
without loss or duplication."""
import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time

from hftmm.captures import CaptureStats, read_collector
from hftmm.data_ingestion import Recorder
from hftmm.data_ingestion.recorder import complete_gzip_length

HOUR = 3_600_000_000_000
T0 = 1_723_161_600_000_000_000  # 2024-08-09 00:00 UTC


def frames(start, n, t0=T0, step=1_000_000_000):
    return [(t0 + i * step, b'{"stream":"x@trade","data":{"seq":%d}}' % (start + i)) for i in range(n)]


def read_all(paths):
    out = []
    for p in sorted(paths):
        st = CaptureStats()
        out += [(m.local_ns, m.payload) for m in read_collector(p, stats=st)]
        assert st.malformed == 0, st.errors
    return out


def test_rotation_by_hour_and_round_trip(tmp_path):
    rec = Recorder(str(tmp_path), "btcusdt", flush_interval_s=0.05, fsync=False).start()
    data = frames(0, 200, t0=T0 + HOUR - 100 * 1_000_000_000)   # crosses an hour boundary
    for ts, f in data:
        rec.write(ts, f)
    rec.stop()
    files = sorted(os.listdir(tmp_path))
    assert files == ["BTCUSDT_spot_20240809_00.gz", "BTCUSDT_spot_20240809_01.gz"]
    back = read_all(str(tmp_path / f) for f in files)
    assert back == data
    # every flush is a complete member
    for f in files:
        p = str(tmp_path / f)
        assert complete_gzip_length(p) == os.path.getsize(p)


def test_restart_cuts_partial_member_and_appends(tmp_path):
    rec = Recorder(str(tmp_path), "BTCUSDT", flush_interval_s=0.05, fsync=False).start()
    first = frames(0, 50)
    for ts, f in first:
        rec.write(ts, f)
    rec.stop()
    path = str(tmp_path / "BTCUSDT_spot_20240809_00.gz")
    good = os.path.getsize(path)
    with open(path, "ab") as fh:   # a crash mid-member leaves garbage at the end
        fh.write(gzip.compress(b"999 {\"half\":")[:17])
    rec = Recorder(str(tmp_path), "BTCUSDT", flush_interval_s=0.05, fsync=False).start()
    second = frames(50, 50, t0=T0 + 50 * 1_000_000_000)
    for ts, f in second:
        rec.write(ts, f)
    rec.stop()
    assert os.path.getsize(path) > good
    assert read_all([path]) == first + second


def test_newlines_in_frames_cannot_break_lines(tmp_path):
    rec = Recorder(str(tmp_path), "X", flush_interval_s=0.05, fsync=False).start()
    rec.write(T0, b'{"a":\n1}')
    rec.stop()
    back = read_all([str(p) for p in tmp_path.iterdir()])
    assert back == [(T0, b'{"a": 1}')]


def test_kill_9_loses_at_most_the_last_second(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        from hftmm.data_ingestion import Recorder
        rec = Recorder({str(tmp_path)!r}, "BTCUSDT", flush_interval_s=0.2).start()
        i = 0
        print("ready", flush=True)
        while True:
            rec.write(time.time_ns(), b'{{"seq":%d}}' % i)
            i += 1
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=str(tmp_path))
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(2.0)
    killed_at = time.time_ns()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    back = read_all([str(p) for p in tmp_path.iterdir()])
    seqs = [int(p.split(b":")[1].rstrip(b"}")) for _, p in back]
    assert len(seqs) > 500
    assert seqs == list(range(len(seqs)))          # a prefix: nothing lost inside, nothing doubled
    assert killed_at - back[-1][0] < 1_000_000_000   # at most the last second is lost


# -- write errors (a full disk) ------------------------------------------------
FULL_DISK = r"""
import json, logging, os, random, resource, signal, sys
sys.path[:0] = {path!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG from write(), not a kill
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
from hftmm.data_ingestion import Recorder

out, t0 = {out!r}, {t0}
rnd = random.Random(7)
rec = Recorder(out, "BTCUSDT", flush_interval_s=3600, max_buffer_bytes=40_000).start()
seq = 0

def offer(n):
    global seq
    for _ in range(n):
        # incompressible payloads: members of a known, useful size
        rec.write(t0 + seq * 1000, b'{{"seq":%d,"x":"%s"}}' % (seq, rnd.randbytes(40).hex().encode()))
        seq += 1

offer(2000)                     # before: written
assert rec.flush() and rec.lines_buffered == 0
path = rec.files[0]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 5000, hard))   # the disk is full
marks = [seq]
for _ in range(8):              # during: every attempt fails part-way
    offer(300)
    assert rec.flush()
marks.append(seq)
during = rec.stats()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))                           # space again
offer(1000)                     # after: written, with what was still buffered
assert rec.flush()
marks.append(seq)
rec.stop()
print(json.dumps(dict(during=during, after=rec.stats(), marks=marks, path=path)))
"""


def _seqs(path):
    back = read_all([path])
    return [int(p.split(b'"seq":')[1].split(b",")[0]) for _, p in back]


def test_full_disk_loses_only_what_did_not_fit_and_recovers(tmp_path):
    """A file size limit (RLIMIT_FSIZE, as a full disk: writes fail part-way with
    EFBIG) hit mid-recording: the file keeps only complete members, every line
    before and after the failure reads back, the unwritten members wait in
    memory (bounded; the oldest dropped beyond it) and go out when space
    returns; lines_lost = offered - read back; one warning per kind."""
    import json
    script = FULL_DISK.format(path=sys.path, out=str(tmp_path), t0=T0)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    before, during_end, after_end = res["marks"]
    path = res["path"]
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    # the whole file is complete gzip members: gzip reads it to the end
    assert complete_gzip_length(path) == os.path.getsize(path)
    assert gzip.open(path).read().count(b"\n") == len(_seqs(path))
    seqs = _seqs(path)
    assert seqs == sorted(set(seqs))                      # in order, nothing doubled
    assert seqs[:before] == list(range(before))           # everything before the failure
    assert set(range(during_end, after_end)) <= set(seqs)  # everything after it
    kept = [s for s in seqs if before <= s < during_end]
    assert kept and len(kept) < during_end - before        # some of the outage fitted, some did not
    assert kept == list(range(during_end - len(kept), during_end))   # the oldest were dropped
    d, a = res["during"], res["after"]
    assert d["write_errors"] == 8 and d["lines_buffered"] > 0 and d["lines_lost"] > 0
    assert d["buffered_bytes"] <= 40_000
    assert a["lines_buffered"] == 0 and a["write_errors"] == 8
    assert a["lines_lost"] == after_end - len(seqs)       # offered - read back
    assert a["lines_written"] == len(seqs)
    # one warning when it starts, one when dropping starts, one when it works again
    assert r.stderr.count("cannot write") == 1, r.stderr
    assert r.stderr.count("dropping the") == 1 and r.stderr.count("writing again") == 1


def test_write_error_when_the_file_cannot_be_cut_either(tmp_path, monkeypatch):
    """A write failing part-way and the cut-back failing too (EIO): nothing is
    appended after the partial member until a cut works; then everything
    buffered goes out and the file reads back whole."""
    import errno

    import hftmm.data_ingestion.recorder as recmod

    real_write, real_trunc = os.write, os.ftruncate
    faults = {"write": 0, "trunc": 0}

    def write(fd, data):
        if faults["write"]:
            faults["write"] -= 1
            real_write(fd, bytes(data[: len(data) // 2]))       # half of it lands
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def ftruncate(fd, n):
        if faults["trunc"]:
            faults["trunc"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        return real_trunc(fd, n)

    monkeypatch.setattr(recmod.os, "write", write)
    monkeypatch.setattr(recmod.os, "ftruncate", ftruncate)
    rec = Recorder(str(tmp_path), "BTCUSDT", flush_interval_s=3600, fsync=False).start()
    data = frames(0, 300)
    for ts, f in data[:100]:
        rec.write(ts, f)
    assert rec.flush() and rec.write_errors == 0
    path = rec.files[0]
    # the failed write's cut; then each of the next two attempts: its cut before appending (and the retry)
    faults.update(write=1, trunc=5)
    for ts, f in data[100:200]:
        rec.write(ts, f)
    assert rec.flush() and rec.write_errors == 1 and rec.lines_buffered == 100
    assert complete_gzip_length(path) < os.path.getsize(path)     # the partial member is still there
    assert rec.flush() and rec.write_errors == 2                  # cut fails again: nothing appended
    assert rec.flush() and rec.write_errors == 3
    for ts, f in data[200:]:
        rec.write(ts, f)
    assert rec.flush() and rec.write_errors == 3 and rec.lines_buffered == 0
    rec.stop()
    assert rec.lines_lost == 0 and rec.lines_written == 300
    assert read_all([path]) == data


def test_stop_while_the_disk_is_full_counts_the_unwritten_lines_as_lost(tmp_path, monkeypatch):
    import errno

    import hftmm.data_ingestion.recorder as recmod

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    rec = Recorder(str(tmp_path), "BTCUSDT", flush_interval_s=3600, fsync=False).start()
    monkeypatch.setattr(recmod.os, "write", write)
    for ts, f in frames(0, 50):
        rec.write(ts, f)
    rec.stop()
    assert rec.lines_written == 0 and rec.lines_lost == 50 and rec.write_errors == 1
    assert rec.stats()["lines_buffered"] == 0


def test_complete_gzip_length_streams_members(tmp_path):
    """Complete members, one expanding to 4 MiB (several bounded inflate calls),
    then a cut-off member: the prefix of whole members, read in small pieces."""
    members = [gzip.compress(b"1 {}\n"), gzip.compress(b"a" * (4 << 20)), gzip.compress(b"2 {}\n")]
    p = tmp_path / "x.gz"
    p.write_bytes(b"".join(members) + gzip.compress(b"3 {}\n" * 100)[:-5])
    assert complete_gzip_length(str(p), chunk=7) == sum(map(len, members))
    assert complete_gzip_length(str(p)) == sum(map(len, members))
    p.write_bytes(b"".join(members))
    assert complete_gzip_length(str(p), chunk=7) == os.path.getsize(p)
