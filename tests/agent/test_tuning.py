"""The tuning model and the segment optimizer (agent/tuning.py)."""

from agent.tuning import (
    MAX_TRANSFERS, MIN_CHUNK, Choice, FileMix, Measured, Optimizer, SegmentResult, choose, segments,
)

MiB = 1024 * 1024
CLEAN_LAN = Measured(rtt_s=0.001, single=110e6, parallel=115e6, streams=8)
LONG_CLEAN = Measured(rtt_s=0.05, single=20e6, parallel=24e6, streams=8)
LONG_LOSSY = Measured(rtt_s=0.05, single=0.45e6, parallel=3.4e6, streams=8, lossy=True)


def test_one_large_file_gets_parts_and_many_small_files_get_files_at_once():
    large = choose(LONG_CLEAN, FileMix.of([1024 * MiB]))
    small = choose(LONG_CLEAN, FileMix.of([64 * 1024] * 10_000))
    assert large.transfers == 4 and small.transfers >= 32
    assert large.chunk_size >= 8 * MiB and small.upload_concurrency == 4


def test_held_back_streams_on_a_lossy_path_get_many_connections():
    large = choose(LONG_LOSSY, FileMix.of([256 * MiB]))
    small = choose(LONG_LOSSY, FileMix.of([64 * 1024] * 2000))
    assert large.upload_concurrency == 64 and small.transfers == MAX_TRANSFERS
    assert any("held" in reason for reason in large.reasons)
    # Medium files go in parts too when each stream carries little.
    assert choose(LONG_LOSSY, FileMix.of([100 * MiB] * 5)).multipart_cutoff == 32 * MiB


def test_a_clean_lan_keeps_rclones_modest_defaults():
    choice = choose(CLEAN_LAN, FileMix.of([MiB] * 1000))
    assert choice.transfers <= 8 and choice.upload_concurrency == 4


def test_no_probe_means_rclones_defaults_and_overrides_win():
    assert (choose(None, FileMix.of([MiB])).transfers, choose(None, FileMix.of([MiB])).chunk_size) == (4, MIN_CHUNK)
    choice = choose(LONG_CLEAN, FileMix.of([64 * 1024] * 10_000), {"transfers": 7, "chunk_size": 32 * MiB})
    assert choice.transfers == 7 and choice.chunk_size == 32 * MiB and set(choice.overridden) == {"transfers",
                                                                                                  "chunk_size"}


def test_memory_for_upload_buffers_is_capped():
    choice = choose(LONG_LOSSY, FileMix.of([4096 * MiB] * 20))
    at_once = min(choice.transfers, 20)
    assert at_once * choice.upload_concurrency * choice.chunk_size <= 1024 * MiB


def test_the_prediction_is_slower_on_the_lossy_path_and_counts_small_files_by_latency():
    mix = FileMix.of([64 * 1024] * 2000)
    assert choose(LONG_LOSSY, mix).predicted_seconds > choose(LONG_CLEAN, mix).predicted_seconds
    assert choose(LONG_CLEAN, mix).predicted_seconds > 2000 * 64 * 1024 / 24e6


def _optimizer(transfers=16):
    return Optimizer(Choice(transfers=transfers, checkers=16, upload_concurrency=4, chunk_size=MIN_CHUNK,
                            multipart_cutoff=256 * MiB))


def test_the_optimizer_goes_down_when_the_path_gets_slower_and_says_why():
    opt = _optimizer()
    first, _ = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=5, errors=0))
    assert first.transfers > 16  # a probing step up after the first segment
    held, _ = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=5, errors=0))
    lower, why = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=25, errors=0))
    assert lower.transfers < held.transfers and "the path got slower" in why


def test_the_optimizer_climbs_while_throughput_rises_and_steps_back_when_it_does_not():
    opt = _optimizer()
    up1, _ = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=10, errors=0))
    up2, why = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=6, errors=0))
    assert up2.transfers > up1.transfers and "rose" in why
    back, why = opt.next(SegmentResult(files=50, bytes=50 * MiB, seconds=8, errors=0))
    assert back.transfers == up1.transfers and "did not help" in why


def test_errors_halve_and_a_users_setting_is_kept():
    opt = _optimizer(32)
    halved, why = opt.next(SegmentResult(files=50, bytes=MiB, seconds=5, errors=10))
    assert halved.transfers == 16 and "failed" in why
    locked = Optimizer(_optimizer(9).choice, locked=True)
    assert locked.next(SegmentResult(files=50, bytes=MiB, seconds=50, errors=0))[0].transfers == 9


def test_segments_split_a_big_folder_by_bytes_and_keep_a_small_one_whole():
    names = [f"f{i}" for i in range(400)]
    parts = segments(names, [1000] * 400)
    assert len(parts) == 8 and sum(parts, []) == names
    assert segments(names[:100], [1] * 100) == [names[:100]]


def test_a_segment_holds_many_times_the_files_sent_at_once():
    names = [f"f{i:04d}" for i in range(2000)]
    # 4 at once: the folder is cut in the usual 8; 128 at once: 2,000 files are barely two segments' worth.
    assert len(segments(names, [65536] * 2000, transfers=4)) == 8
    assert len(segments(names, [65536] * 2000, transfers=128)) == 1
    parts = segments(names, [65536] * 2000, transfers=64)
    assert len(parts) == 3 and all(len(part) >= 640 for part in parts)
    assert [n for part in parts for n in part] == names


def test_a_segment_far_short_of_the_prediction_doubles_the_files_at_once_while_that_helps():
    # The bench's lossy link: a probe that met one stream before its first loss predicted 4.1 MB/s and chose 4
    # at once; the first segment ran at 1.9-2.1 MB/s. FTS3's small steps took 4 segments to reach 10.
    opt = Optimizer(Choice(transfers=4, checkers=8, upload_concurrency=4, chunk_size=MIN_CHUNK,
                           multipart_cutoff=256 * MiB, predicted_bytes_per_s=4.1e6))
    first, why = opt.next(SegmentResult(files=52, bytes=int(54.5e6), seconds=40, errors=0))
    assert first.transfers == 8 and "under 60% of the 3.9 MiB/s the network check predicted" in why
    rose, why = opt.next(SegmentResult(files=52, bytes=int(54.5e6), seconds=24, errors=0))
    assert rose.transfers == 16 and "rose" in why and "twice" in why
    # Close to the prediction: the usual steps.
    near, why = opt.next(SegmentResult(files=52, bytes=int(54.5e6), seconds=13, errors=0))
    assert near.transfers == 24 and "more at once may carry more" in why
    # A segment as slow as the one before holds, short of the prediction or not: more at once did not help.
    held, why = opt.next(SegmentResult(files=52, bytes=int(54.5e6), seconds=13.5, errors=0))
    assert held.transfers == 24 and "about the same" in why


def test_segments_of_unlike_files_are_not_compared_by_their_bytes_per_second():
    # A tree's 50 big files, then 668 small ones at a third of the bytes/s on the same path: not a slower path.
    opt = _optimizer(11)
    opt.next(SegmentResult(files=50, bytes=int(87.5e6), seconds=5.2, errors=0))
    held, why = opt.next(SegmentResult(files=668, bytes=int(26.8e6), seconds=8.8, errors=0))
    assert held.transfers == opt.history[-1][0] and "do not compare" in why and "KiB" in why and "MiB" in why
