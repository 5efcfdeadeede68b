"""``person-erase serve-dashscope``: arguments and runner, called by ``person_erase.cli``."""

from __future__ import annotations

import argparse
import sys

from .state import Knobs


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the serve-dashscope options to ``parser``."""
    d = Knobs()
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--latency-seg", type=float, default=d.latency_seg, help="seconds per segmentation task")
    parser.add_argument("--latency-erase", type=float, default=d.latency_erase, help="seconds per erase task")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="probability a task ends FAILED")
    parser.add_argument("--result-ttl", type=float, default=d.result_ttl_s, help="seconds result URLs stay valid (24 h)")
    parser.add_argument("--submits-per-second", type=float, default=d.submits_per_second, help="per-model submit limit (2)")
    parser.add_argument("--max-in-flight", type=int, default=d.max_in_flight, help="per-model running tasks limit (1)")
    parser.add_argument("--throttle-next", type=int, default=0, help="answer the next N submits 429")
    parser.add_argument("--error-next-submits", type=int, default=0, help="answer the next N submits 5xx")
    parser.add_argument("--error-next-queries", type=int, default=0, help="answer the next N task queries 5xx")
    parser.add_argument("--drop-next-downloads", type=int, default=0, help="drop the next N result downloads midway")
    parser.add_argument("--result-format", choices=["png", "jpeg"], default="png", help="erase result format")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")
    parser.add_argument("--segmenter", default="local", help="segmenter behind image-instance-segmentation (default local)")
    parser.add_argument("--eraser", default="patchmatch", help="eraser behind image-erase-completion (default patchmatch)")
    parser.add_argument("--seed", type=int, default=None, help="seed for --failure-rate")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run_serve(args: argparse.Namespace) -> int:
    """Run the server in the foreground until Ctrl-C; returns the exit code."""
    from .server import serve

    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"fake DashScope on http://{host}:{args.port}  —  export DASHSCOPE_API_KEY=sk-test "
        f"DASHSCOPE_HTTP_BASE_URL=http://{host}:{args.port}/api/v1  (stats: /_fake/stats)",
        file=sys.stderr,
    )
    try:
        serve(
            args.host,
            args.port,
            segment_backend=args.segmenter,
            erase_backend=args.eraser,
            log_level=args.log_level,
            latency_seg=args.latency_seg,
            latency_erase=args.latency_erase,
            failure_rate=args.failure_rate,
            result_ttl_s=args.result_ttl,
            submits_per_second=args.submits_per_second,
            max_in_flight=args.max_in_flight,
            throttle_next_submits=args.throttle_next,
            error_next_submits=args.error_next_submits,
            error_next_queries=args.error_next_queries,
            drop_next_downloads=args.drop_next_downloads,
            result_format=args.result_format,
            api_key=args.api_key,
            seed=args.seed,
        )
    except KeyboardInterrupt:
        pass
    return 0
