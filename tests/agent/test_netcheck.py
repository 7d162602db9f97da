"""The network check's steps and verdicts, with the network faked (agent/netcheck/).
The same check against real servers and a real WAN: tests/netcheck."""


import pytest

from agent.netcheck import Checker, Limits, S3Error, Target, host_tcp
from agent.netcheck.probe import Probe
from dtn_protocol.failures import FailureReason
from tests.agent.fakes import FakeS3

TARGET = Target("https://10.0.0.2:9443", "10.0.0.2", 9443, True, "ab" * 32)
LIMITS = Limits(probe_max_bytes=1024 * 1024, probe_seconds=2)


def proc(tmp_path, wmem_max=4194304, cc="cubic", retrans=(1000, 0, 2000, 0)):
    """A /proc with this host's TCP settings; retrans = (out before, retrans before, out after, retrans after)."""
    root = tmp_path / "proc"
    for folder in ("sys/net/ipv4", "sys/net/core", "net"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "sys/net/ipv4/tcp_rmem").write_text("4096 131072 6291456\n")
    (root / "sys/net/ipv4/tcp_wmem").write_text(f"4096 16384 {wmem_max}\n")
    (root / "sys/net/core/rmem_max").write_text("212992\n")
    (root / "sys/net/core/wmem_max").write_text("212992\n")
    (root / "sys/net/ipv4/tcp_congestion_control").write_text(f"{cc}\n")
    (root / "sys/net/ipv4/tcp_available_congestion_control").write_text("reno cubic bbr\n")
    snmp = root / "net/snmp"
    snmp.write_text(f"Tcp: OutSegs RetransSegs\nTcp: {retrans[0]} {retrans[1]}\n")
    return root


def checker(tmp_path, s3=None, connect=None, fingerprint="ab" * 32, **proc_kwargs):
    return Checker(TARGET, s3 if s3 is not None else FakeS3(), limits=LIMITS,
                   tcp_connect=connect or (lambda h, p, t: None), tls_fingerprint=lambda h, p: fingerprint,
                   resolve=lambda h, p: ["10.0.0.2"], proc=proc(tmp_path, **proc_kwargs))


def test_a_clean_path_is_go_with_rtt_probe_and_nothing_left_behind(tmp_path):
    s3 = FakeS3()
    report = checker(tmp_path, s3).run(total_bytes=1000, files=1, free_bytes=10**12)
    assert report["verdict"] == "go" and report["reason"] == "" and report["summary"].startswith("Go:")
    assert report["rtt_ms"]["samples"] == 5 and report["probe"]["streams"] == 8
    assert report["s3"] == {"write": True, "read_back": True, "remove": True}
    assert s3.objects == {}  # every probe object removed


def test_the_name_that_does_not_resolve_is_unreachable(tmp_path):
    c = checker(tmp_path)
    c.resolve = lambda h, p: (_ for _ in ()).throw(OSError(-2, "Name or service not known"))
    report = c.run()
    assert report["verdict"] == "no_go" and report["reason"] == "receiver_unreachable"


def test_refused_connections_are_unreachable_and_one_refusal_is_a_warning(tmp_path):
    def refuse(h, p, t):
        raise ConnectionRefusedError(111, "Connection refused")

    assert checker(tmp_path, connect=refuse).run()["reason"] == "receiver_unreachable"
    calls = []

    def flaky(h, p, t):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionRefusedError(111, "Connection refused")

    report = checker(tmp_path, connect=flaky).run()
    assert report["verdict"] == "warn" and {r["code"] for r in report["reasons"]} == {"flaky_connect"}


def test_another_certificate_is_a_mismatch_before_any_key_is_used(tmp_path):
    s3 = FakeS3()
    report = checker(tmp_path, s3, fingerprint="cd" * 32).run()
    assert report["reason"] == "certificate_mismatch" and s3.calls == []


@pytest.mark.parametrize("reason", [FailureReason.AUTH_FAILED, FailureReason.RECEIVER_FULL,
                                    FailureReason.NETWORK_NO_GO])
def test_s3_refusals_keep_their_reason(tmp_path, reason):
    report = checker(tmp_path, FakeS3(fail=S3Error(reason, "no"))).run()
    assert report["verdict"] == "no_go" and report["reason"] == reason


def test_too_little_space_is_no_go_and_little_space_a_warning(tmp_path):
    assert checker(tmp_path).run(total_bytes=10**9, free_bytes=10**8)["reason"] == "receiver_full"
    report = checker(tmp_path).run(total_bytes=10**9, free_bytes=int(1.5 * 10**9))
    assert report["verdict"] == "warn" and "little_space" in {r["code"] for r in report["reasons"]}


def test_a_window_limited_path_gets_buffer_advice_and_a_lossy_one_bbr(tmp_path):
    c = checker(tmp_path, wmem_max=65536)
    c.report = {"probe": {"single_stream_bytes_per_s": 1e6, "parallel_bytes_per_s": 8e6, "streams": 8,
                          "retransmit_ratio": 0.0},
                "rtt_ms": {"min": 50.0, "median": 50.0, "max": 51.0}, "host": host_tcp(c.proc)}
    c._buffers()
    assert "window_limited" in {f["code"] for f in c.findings}
    assert any("tcp_wmem" in a for a in c.report["advice"])
    c2 = checker(tmp_path / "b")
    c2.report = {**c.report, "advice": [], "probe": {**c.report["probe"], "retransmit_ratio": 0.005}}
    c2._buffers()
    assert c2.report["lossy"] and any("bbr" in a for a in c2.report["advice"])


def test_the_probe_before_a_transfer_is_a_small_share_of_it():
    full = Limits()
    MiB = 1024 * 1024
    # A big transfer gets the whole probe; a small one a share of its bytes, never below the minimum.
    assert full.for_transfer(10 * 1024 * MiB) == full
    small = full.for_transfer(100 * MiB)
    assert small.probe_max_bytes == 8 * MiB and small.probe_seconds == 2.0
    middle = full.for_transfer(1024 * MiB)
    assert middle.probe_max_bytes == int(1024 * MiB * 0.03)
    assert 2.0 < middle.probe_seconds < full.probe_seconds
    assert middle.probe_seconds == pytest.approx(full.probe_seconds * middle.probe_max_bytes / full.probe_max_bytes)
    # Unknown size: the whole probe. A bandwidth limit: about two seconds at that rate.
    assert full.for_transfer(None) == full
    limited = full.for_transfer(10 * 1024 * MiB, bandwidth_limit=1024 * 1024)
    assert limited.probe_max_bytes == 2 * MiB and limited.probe_seconds == 2.0


def test_drops_at_a_full_bottleneck_are_congestion_not_loss(tmp_path):
    # 8 streams carried what one did (the path is full) while 6% of segments went again, one stream at 12x
    # what that loss would allow it (Mathis): the probe's slow starts overshot the bottleneck's queue. Not
    # "lossy": more connections would only add to the queue.
    c = checker(tmp_path)
    c.report = {"probe": {"single_stream_bytes_per_s": 4.3e6, "parallel_bytes_per_s": 4.8e6, "streams": 8,
                          "retransmit_ratio": 0.06},
                "rtt_ms": {"min": 21.0, "median": 21.0, "max": 22.0}, "host": host_tcp(c.proc)}
    c._buffers()
    assert c.report["lossy"] is False and "lossy" not in {f["code"] for f in c.findings}
    # The same share with one stream near that bound: random loss, even when a short probe's noise had the
    # 8 streams carry little more than one.
    c2 = checker(tmp_path / "b")
    c2.report = {**c.report, "advice": [],
                 "probe": {**c.report["probe"], "single_stream_bytes_per_s": 0.5e6, "parallel_bytes_per_s": 0.6e6}}
    c2._buffers()
    assert c2.report["lossy"] is True
    # A stream caught fast on a lossy 51 ms path (5x the bound), while 8 carried twice as much: lossy too.
    c3 = checker(tmp_path / "c")
    c3.report = {**c.report, "advice": [], "rtt_ms": {"min": 50.0, "median": 51.0, "max": 52.0},
                 "probe": {**c.report["probe"], "single_stream_bytes_per_s": 2.55e6, "parallel_bytes_per_s": 5.65e6,
                           "retransmit_ratio": 0.0049}}
    c3._buffers()
    assert c3.report["lossy"] is True


def test_an_earlier_probe_is_reused_only_on_the_same_path_with_the_same_congestion_control(tmp_path):
    earlier = {"rtt_median_ms": 0.0, "congestion_control": "cubic", "single_stream_bytes_per_s": 1e6,
               "parallel_bytes_per_s": 4e6, "streams": 8, "bytes": 1, "seconds": 1.0, "retransmit_ratio": 0.0}
    same = checker(tmp_path / "a", cc="cubic").run(earlier_probe=earlier)
    assert same["probe"] is earlier
    # The host now runs BBR: what one stream carries under loss is another story, so it probes again.
    other = checker(tmp_path / "b", cc="bbr").run(earlier_probe=earlier)
    assert other["probe"] is not earlier and other["probe"]["congestion_control"] == "bbr"


class TimedS3(FakeS3):
    """PUTs that take a round trip plus their bytes at a fixed rate, on a fake clock."""

    def __init__(self, rtt: float, rate: float):
        super().__init__()
        self.now, self.rtt, self.rate = 0.0, rtt, rate

    def clock(self) -> float:
        return self.now

    def put(self, key, data):
        self.now += self.rtt + len(data) / self.rate
        super().put(key, data)


def test_a_probe_phase_runs_its_round_trips_even_when_its_bytes_are_sent_sooner(tmp_path):
    # One stream at 4.2 MB/s on a 50 ms path sends 2.8 MiB in under a second: mid slow start on a lossy path.
    MiB = 1024 * 1024
    block = b"x" * 65536
    s3 = TimedS3(rtt=0.05, rate=4.2e6)
    c = Probe(s3, LIMITS, s3.clock, proc(tmp_path))
    quick = c.phase("k", 1, seconds=3.0, max_bytes=int(2.8 * MiB), block=block)
    assert quick["bytes"] == int(2.8 * MiB) and quick["seconds"] < 1.5
    s3.now = 0.0
    full = c.phase("k", 1, seconds=3.0, max_bytes=int(2.8 * MiB), block=block, min_seconds=1.5)
    assert 1.5 <= full["seconds"] < 1.7 and int(2.8 * MiB) < full["bytes"] <= 4 * int(2.8 * MiB)
    # On a slow path the last PUT is sized to end about with the phase, not seconds after it.
    slow = TimedS3(rtt=0.05, rate=0.4e6)
    c.s3, c.clock = slow, slow.clock
    timed = c.phase("k", 1, seconds=3.0, max_bytes=48 * MiB, block=block)
    assert 3.0 <= timed["seconds"] < 3.3
    c.s3, c.clock = s3, s3.clock
    # A fast path stops at 4x its bytes, however short the time.
    fast = TimedS3(rtt=0.0001, rate=1e9)
    c.s3, c.clock = fast, fast.clock
    capped = c.phase("k", 1, seconds=3.0, max_bytes=int(2.8 * MiB), block=block, min_seconds=1.5)
    assert capped["bytes"] == 4 * int(2.8 * MiB) and capped["seconds"] < 1.5
    assert s3.objects == {} and fast.objects == {}


def tuned_proc(tmp_path):
    """The /proc of a namespace tuned as a compose site's tcp-tune leaves it (agent/tcptune.py)."""
    root = proc(tmp_path, wmem_max=64 * 1024 * 1024)
    (root / "sys/net/ipv4/tcp_rmem").write_text("4096 131072 67108864\n")
    return root


def test_what_the_site_applied_is_said_applied_and_only_the_rest_keeps_its_sysctl_lines(tmp_path):
    lossy = {"probe": {"single_stream_bytes_per_s": 0.4e6, "parallel_bytes_per_s": 3.2e6, "streams": 8,
                       "retransmit_ratio": 0.005},
             "rtt_ms": {"min": 50.0, "median": 50.0, "max": 51.0}}
    # Tuned: the default stays cubic (the host's allowed list), the routes name BBR, buffers are 64 MiB.
    tuned = checker(tmp_path / "tuned")
    tuned.report = {**lossy, "host": host_tcp(tuned_proc(tmp_path / "tuned"), routes=["bbr", "bbr"])}
    tuned._buffers()
    assert tuned.report["lossy"] and tuned.report["host"]["congestion_control"] == "bbr"
    assert tuned.report["host"]["default_congestion_control"] == "cubic"
    tcp = tuned.report["tcp_tuning"]
    assert [s.split(" ")[0] for s in tcp["applied"]] == ["BBR", "TCP"] and tcp["advised"] == []
    assert "on this site's routes" in tcp["applied"][0] and "64.0 MiB" in tcp["applied"][1]
    assert not any("sysctl" in a for a in tuned.report["advice"]), tuned.report["advice"]
    assert tuned.report["advice"][0].startswith("Applied: BBR")
    # The same path from an untuned host: nothing applied, both sysctl lines advised.
    plain = checker(tmp_path / "plain", wmem_max=65536)
    plain.report = {**lossy, "host": host_tcp(plain.proc)}
    plain._buffers()
    tcp = plain.report["tcp_tuning"]
    assert tcp["applied"] == [] and len(tcp["advised"]) == 2
    assert "tcp_congestion_control=bbr" in tcp["advised"][0] and "tcp_wmem" in tcp["advised"][1]
    assert not any(a.startswith("Applied") for a in plain.report["advice"])


def test_routes_that_disagree_leave_the_default_in_effect(tmp_path):
    root = proc(tmp_path)
    assert host_tcp(root, routes=["bbr", ""])["congestion_control"] == "cubic"
    assert host_tcp(root, routes=[])["congestion_control"] == "cubic"
    assert host_tcp(root, routes=["bbr"])["congestion_control_from"] == "routes"


def test_a_check_without_a_probe_still_says_what_was_applied(tmp_path):
    c = Checker(TARGET, FakeS3(), limits=LIMITS, tcp_connect=lambda h, p, t: None,
                tls_fingerprint=lambda h, p: "ab" * 32, resolve=lambda h, p: ["10.0.0.2"], proc=tuned_proc(tmp_path))
    report = c.run(probe=False)
    assert report["tcp_tuning"]["applied"] and report["tcp_tuning"]["in_effect"]["tcp_wmem_max"] == 64 * 1024 * 1024
