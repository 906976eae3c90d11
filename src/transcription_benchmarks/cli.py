"""Command line: each command is a thin call into the library."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from transcription_benchmarks.args import (
    DEFAULT_MODEL,
    DEFAULT_TEST_FILE,
    AttnImplementation,
    BackendName,
    BenchArgs,
    ComputeType,
    TorchDType,
)
from transcription_benchmarks.errors import BenchError, InvalidOptionError

app = typer.Typer(
    help="Benchmark Whisper-family models: speed, memory, accuracy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _read_by(option: str, extra: str = "") -> str:
    """An option's help: the engines that read it (their `reads`, so a new engine shows up)."""
    from transcription_benchmarks.backends.registry import backend_class, backend_names

    readers = []
    for name in backend_names():
        try:
            if option in backend_class(name).reads:
                readers.append(name)
        except BenchError:
            continue  # a plug-in that does not load reads nothing
    return ", ".join(readers) + extra


def _key_values(pairs: list[str], flag: str, *, parse_json: bool = True) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is parsed as JSON when it parses (5, true, [0.0, 0.2]), else a
    string; with parse_json=False always the string (environment variables)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidOptionError(f"{flag} expects KEY=VALUE, got {pair!r}")
        parsed[key] = raw
        if parse_json:
            # ValueError: not JSON, or an integer past Python's 4300 digits; RecursionError:
            # nesting too deep. Either way the value stays the string given.
            with contextlib.suppress(ValueError, RecursionError):
                parsed[key] = json.loads(raw)
    return parsed


def check_writable(path: Path | None, flag: str) -> None:
    """Refuse an output path that cannot be written before any model loads, not after the
    run it was meant to keep: the file is opened for appending (nothing is truncated) and a
    file made only for this check is removed again."""
    if path is None:
        return
    if path.is_dir():
        raise InvalidOptionError(f"{flag} {path} is a directory, not a file")
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise InvalidOptionError(
            f"{flag} {path} is not writable: {blocked} is a file, not a folder"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path.resolve()  # a link to a file not made yet: the check makes and removes
        existed = target.exists()  # the target, and leaves the link as it found it
        with target.open("a"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        raise InvalidOptionError(f"{flag} {path} is not writable: {exc.strerror or exc}") from None


def _params_object(params: str | None) -> dict[str, Any] | None:
    """--params: a JSON object, or None when not given."""
    if params is None:
        return None
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        raise InvalidOptionError(f"--params is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidOptionError("--params must be a JSON object")
    return parsed


def _print_prediction(segments: list[Any], info: Any) -> None:
    """An endpoint's answer: the text on stdout, what it took on stderr."""
    console.print(" ".join(s.text.strip() for s in segments), highlight=False, markup=False)
    errors.print(
        f"{info.duration:.1f} s of audio, language {info.language}, "
        f"{info.processing_s:.2f} s on the endpoint ({info.pipeline})",
        highlight=False,
    )


@app.command("bench")
def bench_command(
    model: Annotated[
        str, typer.Argument(help="hub id, local dir, packaged id or synthetic:<arch>")
    ] = DEFAULT_MODEL,
    backend: Annotated[BackendName | None, typer.Option(help="default: by model format")] = None,
    test_file: Annotated[
        str, typer.Option("--test-file", "-f", help="path or test-audio name")
    ] = DEFAULT_TEST_FILE,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    warmup: Annotated[int, typer.Option(help="untimed runs first")] = 1,
    repeats: Annotated[int, typer.Option("--repeats", "-n", help="timed runs")] = 3,
    batch_size: Annotated[int | None, typer.Option(help="batched inference")] = None,
    beam_size: Annotated[int | None, typer.Option()] = None,
    temperature: Annotated[
        list[float] | None, typer.Option(help="repeat for a fallback list")
    ] = None,
    language: Annotated[str | None, typer.Option()] = None,
    task: Annotated[str, typer.Option(help="transcribe or translate")] = "transcribe",
    without_timestamps: Annotated[
        bool | None, typer.Option("--without-timestamps/--with-timestamps")
    ] = None,
    word_timestamps: Annotated[bool, typer.Option()] = False,
    compute_type: Annotated[ComputeType, typer.Option(help=_read_by("compute_type"))] = "default",
    chunk_length: Annotated[
        int | None, typer.Option(help=_read_by("chunk_length", ", seconds"))
    ] = None,
    vad_filter: Annotated[
        bool | None, typer.Option("--vad-filter/--no-vad-filter", help="faster-whisper")
    ] = None,
    condition_on_previous_text: Annotated[
        bool | None, typer.Option("--condition-on-previous-text/--no-condition-on-previous-text")
    ] = None,
    cpu_threads: Annotated[int, typer.Option(help=_read_by("cpu_threads", "; 0 = default"))] = 0,
    transcribe_option: Annotated[
        list[str] | None,
        typer.Option(
            help=_read_by("transcribe_options", ": the engine's own KEY=VALUE (repeatable)")
        ),
    ] = None,
    dtype: Annotated[TorchDType | None, typer.Option(help=_read_by("dtype"))] = None,
    attn_implementation: Annotated[
        AttnImplementation | None, typer.Option(help="transformers")
    ] = None,
    chunk_length_s: Annotated[
        float | None, typer.Option(help=_read_by("chunk_length_s", ", seconds"))
    ] = None,
    generate_kwarg: Annotated[
        list[str] | None, typer.Option(help="transformers generate KEY=VALUE (repeatable)")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="any BenchArgs option as KEY=VALUE (repeatable): those without a flag of their "
            "own, e.g. num_workers, and a plug-in engine's",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the result as JSON")
    ] = None,
    text: Annotated[bool, typer.Option("--text/--no-text", help="print the transcript")] = True,
    reference: Annotated[
        Path | None, typer.Option(help="reference transcript file for WER (default: catalog's)")
    ] = None,
    determinism: Annotated[
        bool,
        typer.Option(help="run --repeats times, compare texts, name the option that breaks it"),
    ] = False,
) -> None:
    """Run one benchmark: print the transcript and a stats line."""
    from transcription_benchmarks.bench import bench

    values: dict[str, Any] = {
        "backend": backend,
        "test_file": test_file,
        "device": device,
        "warmup": warmup,
        "repeats": repeats,
        "batch_size": batch_size,
        "beam_size": beam_size,
        "language": language,
        "task": task,
        "without_timestamps": without_timestamps,
        "word_timestamps": word_timestamps,
        "compute_type": compute_type,
        "chunk_length": chunk_length,
        "vad_filter": vad_filter,
        "condition_on_previous_text": condition_on_previous_text,
        "cpu_threads": cpu_threads,
        "transcribe_options": _key_values(transcribe_option or [], "--transcribe-option"),
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "chunk_length_s": chunk_length_s,
        "generate_kwargs": _key_values(generate_kwarg or [], "--generate-kwarg"),
        "reference_file": str(reference) if reference else None,
    }
    if temperature:
        values["temperature"] = temperature[0] if len(temperature) == 1 else temperature
    # Pass only what differs from the defaults, so "set by the user" stays meaningful.
    defaults = BenchArgs()
    given = {k: v for k, v in values.items() if v != getattr(defaults, k)}
    extra = _key_values(option or [], "--option")
    if both := sorted(set(given) & set(extra)):
        raise InvalidOptionError(f"set {', '.join(both)} by its flag or by --option, not both")
    args = BenchArgs.build(**given, **extra)
    check_writable(json_out, "--json")
    if determinism:
        from transcription_benchmarks.studies.determinism import check_determinism

        report = check_determinism(model, args, runs=args.repeats)
        console.print(report.describe(), highlight=False, markup=False)
        if json_out is not None:
            json_out.write_text(report.model_dump_json(indent=2) + "\n")
        raise typer.Exit(0 if report.deterministic else 1)

    with _progress() as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task_id = progress.add_task("loading model", total=None, audio="")

        def on_progress(run: int, total_runs: int, seconds: float, duration: float) -> None:
            timed = run - args.warmup + 1
            label = f"warm-up {run + 1}" if run < args.warmup else f"run {timed}/{args.repeats}"
            progress.update(
                task_id,
                description=label,
                completed=seconds,
                total=duration,
                audio=f"{seconds:.0f}/{duration:.0f} s audio",
            )

        result = bench(model, args, progress=on_progress)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            errors.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False)
    if text:
        console.print(result.get_text(), highlight=False, markup=False)
    console.print(result.get_stats(), highlight=False, markup=False)
    if json_out is not None:
        result.save(json_out)
        errors.print(f"result written to {json_out}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[audio]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
    )


@app.command("dataset")
def dataset_command(
    source: Annotated[
        str,
        typer.Argument(
            help="generated[:N], shared, a folder, a .jsonl manifest, a saved HF dataset, "
            "or hf:NAME[:CONFIG]:SPLIT"
        ),
    ] = "generated",
    model: Annotated[
        str, typer.Option("--model", "-m", help="hub id, local dir, packaged id, synthetic:")
    ] = DEFAULT_MODEL,
    backend: Annotated[BackendName | None, typer.Option(help="default: by model format")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(help="batch across utterances (default: sequential)")
    ] = None,
    beam_size: Annotated[int | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="any other BenchArgs option as KEY=VALUE (repeatable)"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many utterances")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(min=0, help="stop before this much audio")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="append the result to this JSONL file")
    ] = None,
) -> None:
    """Transcribe a dataset of utterances and print the leaderboard-style row: corpus WER and
    CER (errors summed over utterances), RTFx (audio seconds / transcription seconds), memory."""
    from transcription_benchmarks.datasets import run_dataset
    from transcription_benchmarks.report.datasets import dataset_table

    given = {
        k: v
        for k, v in {
            "backend": backend,
            "device": device,
            "batch_size": batch_size,
            "beam_size": beam_size,
            "language": language,
        }.items()
        if v != getattr(BenchArgs(), k)
    }
    extra = _key_values(option or [], "--option")
    if both := sorted(set(given) & set(extra)):
        raise InvalidOptionError(f"set {', '.join(both)} by its flag or by --option, not both")
    args = BenchArgs.build(**given, **extra)
    check_writable(out, "--out")
    with (
        errors.status(f"transcribing {source} with {model}"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        result = run_dataset(
            model,
            source,
            args,
            limit=limit,
            max_duration_s=max_minutes * 60 if max_minutes is not None else None,
        )
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            errors.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False)
    console.print(dataset_table([result]), highlight=False, markup=False)
    console.print(result.stats_line(), highlight=False, markup=False)
    if out is not None:
        result.save(out)
        errors.print(f"result appended to {out}")


@app.command("load")
def load_command(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="one or more of: local, faster-whisper-server, http://HOST:PORT "
            "(SageMaker-style), openai:URL, sagemaker:ENDPOINT"
        ),
    ],
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help="single-stream, offline, server, capacity, bad-input, or all (repeatable; "
            "default: single-stream, offline, server)",
        ),
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option("--file", "-f", help="audio with a reference, cycled (default: jfk.flac)"),
    ] = None,
    requests: Annotated[int, typer.Option(help="single stream and offline: requests")] = 20,
    concurrency: Annotated[
        int | None, typer.Option(help="offline: most in flight (default: all)")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="server: arrivals per second (default: half the offline throughput)"),
    ] = None,
    duration: Annotated[float, typer.Option(help="server: seconds of arrivals")] = 30.0,
    bound: Annotated[float, typer.Option(help="p99 latency bound, seconds")] = 5.0,
    max_wer: Annotated[float, typer.Option(help="an answer further than this is wrong")] = 0.2,
    trial_s: Annotated[float, typer.Option(help="capacity: seconds per trial")] = 20.0,
    max_trials: Annotated[int, typer.Option(help="capacity: most rates tried")] = 6,
    start_rps: Annotated[
        float | None, typer.Option(help="capacity: first rate (default: offline throughput)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Poisson arrivals' seed")] = 0,
    timeout: Annotated[float, typer.Option(help="seconds the client waits for an answer")] = 120,
    model: Annotated[str, typer.Option(help="openai: targets: the model name sent")] = "whisper-1",
    model_field: Annotated[
        str, typer.Option(help="openai: targets: the form field naming the model")
    ] = "model",
    language: Annotated[str | None, typer.Option(help="openai: targets: language")] = None,
    params: Annotated[
        str | None, typer.Option(help="SageMaker-style targets: JSON request parameters")
    ] = None,
    instance_type: Annotated[
        str | None, typer.Option(help="price the capacity on this instance type")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="price region (default: AWS_REGION or us-east-1)")
    ] = None,
    prices: Annotated[Path | None, typer.Option(help="price table TOML (default: shipped)")] = None,
    daily_hours: Annotated[
        float | None, typer.Option(help="audio hours a day to size the fleet for")
    ] = None,
    peak_to_average: Annotated[
        float, typer.Option(help="the daily volume's peak rate over its average")
    ] = 1.0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="append the results to this JSONL file")
    ] = None,
) -> None:
    """Endpoints under load, MLPerf-style: single stream (latency), offline (throughput),
    server (Poisson arrivals within a p99 bound), capacity (the highest rate that holds it,
    and its $/audio hour), bad input (what the server answers to it). Every answer is checked
    against the file's reference; one table compares the targets."""
    import os
    from contextlib import ExitStack

    from pydantic import ValidationError

    from transcription_benchmarks.errors import describe_validation_error
    from transcription_benchmarks.load import Clip, LoadSettings, Pricing, run_load
    from transcription_benchmarks.load.result import SCENARIOS
    from transcription_benchmarks.load.servers import open_target
    from transcription_benchmarks.report.load import load_report
    from transcription_benchmarks.report.prices import load_prices

    chosen = scenario or ["single-stream", "offline", "server"]
    chosen = list(SCENARIOS) if "all" in chosen else chosen
    try:
        settings = LoadSettings(
            requests=requests,
            concurrency=concurrency,
            rate_rps=rate,
            duration_s=duration,
            bound_s=bound,
            max_wer=max_wer,
            seed=seed,
            timeout_s=timeout,
            trial_s=trial_s,
            max_trials=max_trials,
            start_rps=start_rps,
        )
    except ValidationError as exc:
        raise InvalidOptionError(describe_validation_error(exc)) from None
    pricing = None
    if instance_type is not None:
        where = region or os.environ.get("AWS_REGION", "us-east-1")
        pricing = Pricing(load_prices(prices), instance_type, where, daily_hours, peak_to_average)
    clips = [Clip.of(name) for name in (file or ["jfk.flac"])]
    check_writable(out, "--out")
    request_params = _params_object(params)
    results, failed = [], []
    for spec in targets:  # one target failing (a server that will not start) ends only its run
        try:
            with ExitStack() as stack:
                with errors.status(f"starting or reaching {spec}"):
                    target = open_target(
                        spec, stack, model=model, model_field=model_field, language=language,
                        params=request_params, timeout_s=timeout,
                    )  # fmt: skip
                with errors.status(f"{target.info.name}: {', '.join(chosen)}"):
                    results += run_load(
                        target,
                        clips,
                        chosen,  # type: ignore[arg-type]  # checked by run_load
                        settings,
                        pricing=pricing,
                        on_result=(lambda r: r.save(out)) if out is not None else None,
                    )
        except InvalidOptionError:
            raise  # the same for every target: nothing would run
        except BenchError as exc:
            failed.append(spec)
            errors.print(f"[bold red]error:[/] {escape(f'{spec}: {exc}')}", highlight=False)
    if results:
        console.print(load_report(results), highlight=False, markup=False)
    if out is not None:
        errors.print(f"{len(results)} results appended to {out}")
    if failed:
        raise typer.Exit(1)


@app.command("generate-audio")
def generate_audio_command(
    minutes: Annotated[float, typer.Option(help="length; 60, 180 for the long-form files")] = 1.0,
    seed: Annotated[int, typer.Option(help="chooses sentences, rates and pauses")] = 0,
    engine: Annotated[str, typer.Option(help="auto, piper or espeak-ng")] = "auto",
    out: Annotated[
        Path | None, typer.Option(help="directory for <name>.flac/.txt/.json (default: the cache)")
    ] = None,
) -> None:
    """Synthesise English speech with an exact reference transcript, reproducibly."""
    from transcription_benchmarks.audio.generate import generate_speech

    with errors.status(f"synthesising {minutes:g} min of speech ({engine})"):
        speech = generate_speech(minutes * 60, seed=seed, engine=engine, directory=out)
    console.print(
        f"{speech.path}  ({speech.duration_s:.1f} s, {speech.engine}, sha256 {speech.sha256})"
    )
    console.print(f"reference: {speech.reference_path}")


@app.command("report")
def report_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="a results JSONL file (tbench matrix, tbench dataset --out), or tbench "
            "parity's --json file"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for the outputs")] = Path(
        "report"
    ),
    prices: Annotated[
        Path | None,
        typer.Option(help="price table TOML for $/audio h per instance type (default: shipped)"),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="price region (default: AWS_REGION or us-east-1)")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="an earlier results file to compare with in report.html")
    ] = None,
) -> None:
    """Write report.md, report.json, PNG plots and report.html (one self-contained page) from
    a results file (matrix rows and/or dataset results); print the Markdown. Rows from several
    hosts (a bench-remote run) also get a column group per instance type. A parity verdicts
    file (tbench parity --json) gets its tables in report.md."""
    from transcription_benchmarks.report import write_report
    from transcription_benchmarks.report.parity import is_parity_file, write_parity_report
    from transcription_benchmarks.report.prices import load_prices

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if is_parity_file(results):
            paths = write_parity_report(results, out)
        else:
            paths = write_report(
                results, out, prices=load_prices(prices), region=region, baseline=baseline
            )
    for message in {str(w.message) for w in caught if issubclass(w.category, UserWarning)}:
        errors.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    console.print(paths[0].read_text(), highlight=False, markup=False)  # report.md
    for path in paths:
        errors.print(f"wrote {path}", highlight=False)


@app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="baseline results JSONL")],
    b: Annotated[Path, typer.Argument(help="new results JSONL")],
    thresholds: Annotated[Path | None, typer.Option(help="TOML limits, checked against B")] = None,
    host_a: Annotated[
        str | None, typer.Option(help="only A's rows from this host / instance type")
    ] = None,
    host_b: Annotated[
        str | None, typer.Option(help="only B's rows from this host / instance type")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(help="refuse when the environment fingerprints differ (GPU, CPU, versions)"),
    ] = False,
) -> None:
    """Compare B against A cell by cell; exit 1 on a regression beyond noise or a violation.
    With --host-a/--host-b, A and B may be one merged bench-remote file. Rows whose environment
    fingerprints differ are marked and the differences listed (--strict: exit 2 instead)."""
    from transcription_benchmarks.report import (
        check_thresholds,
        compare,
        format_comparison,
        load_thresholds,
    )
    from transcription_benchmarks.report.io import read_results
    from transcription_benchmarks.report.load import compare_load, format_load_comparison
    from transcription_benchmarks.report.thresholds import check_load_thresholds

    limits = load_thresholds(thresholds) if thresholds is not None else None
    read_a, read_b = read_results(a), read_results(b)
    rows_a, rows_b = read_a.results, read_b.results
    if host_a is not None:
        rows_a = rows_a.for_host(host_a)
    if host_b is not None:
        rows_b = rows_b.for_host(host_b)
    regressions = 0
    if rows_a.bench_rows or rows_b.bench_rows or not (read_a.loads or read_b.loads):
        comparison = compare(rows_a, rows_b, strict=strict)
        console.print(format_comparison(comparison), highlight=False, markup=False)
        regressions += len(comparison.regressions)
    load_changes = compare_load(read_a.loads, read_b.loads)
    if load_changes:
        console.print(format_load_comparison(load_changes), highlight=False, markup=False)
        regressions += sum(change.regression for change in load_changes)
    violations: list = []
    if limits is not None:
        violations = check_thresholds(rows_b, limits) + check_load_thresholds(read_b.loads, limits)
    _print_violations(violations)
    raise typer.Exit(1 if regressions or violations else 0)


@app.command("check")
def check_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="a results JSONL file (tbench matrix, tbench dataset --out), or tbench "
            "parity's --json file"
        ),
    ],
    thresholds: Annotated[Path, typer.Option(help="TOML limits")],
) -> None:
    """Check a results file against thresholds; exit 1 listing the violations. Each host's
    current rows are checked (a merged bench-remote file: every instance type)."""
    from transcription_benchmarks.report import check_thresholds, load_thresholds
    from transcription_benchmarks.report.io import read_results
    from transcription_benchmarks.report.thresholds import check_load_thresholds

    read = read_results(results)
    limits = load_thresholds(thresholds)
    violations = check_thresholds(read.results, limits) + check_load_thresholds(read.loads, limits)
    if not violations:
        console.print("all cells within thresholds", highlight=False)
    _print_violations(violations)
    raise typer.Exit(1 if violations else 0)


def _print_violations(violations: list) -> None:
    if violations:
        console.print(f"{len(violations)} threshold violation(s):", highlight=False)
    for violation in violations:
        console.print(f"- {violation.describe()}", highlight=False, markup=False)


@app.command("matrix")
def matrix_command(
    matrix: Annotated[str, typer.Argument(help="cpu, gpu (built-in) or the path of a TOML file")],
    out: Annotated[Path, typer.Option(help="JSONL file the rows are appended to")],
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="skip cells already finished in OUT")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option(help="seconds per cell, for cells without their own timeout_s")
    ] = None,
) -> None:
    """Run a benchmark matrix, each cell in its own process; one JSONL row per cell."""
    from collections import Counter

    from transcription_benchmarks.matrix.runner import run_matrix
    from transcription_benchmarks.matrix.spec import find_matrix, load_matrix

    spec = load_matrix(find_matrix(matrix))
    check_writable(out, "--out")
    rows = run_matrix(spec, out, resume=resume, progress=True, timeout_s=timeout)
    counts = Counter(row.status for row in rows)
    for status, count in sorted(counts.items()):
        cells = [row for row in rows if row.status == status]
        reasons = sorted({row.reason for row in cells if row.reason and status != "ok"})
        detail = ""
        if reasons:
            first = reasons[0] if len(reasons[0]) <= 160 else reasons[0][:157] + "..."
            more = f"; {len(reasons) - 1} other reason(s)" if len(reasons) > 1 else ""
            detail = f" ({first}{more})"
        console.print(f"{status}: {count} cell(s){detail}", highlight=False, markup=False)
    console.print(f"{len(rows)} rows of matrix {spec.name!r} in {out}", highlight=False)


@app.command("autotune")
def autotune_command(
    model: Annotated[str, typer.Argument(help="model to tune")] = DEFAULT_MODEL,
    instance_type: Annotated[
        str | None, typer.Option(help="budget from a SageMaker instance, e.g. ml.g4dn.xlarge")
    ] = None,
    memory_mb: Annotated[float | None, typer.Option(help="budget in MiB instead")] = None,
    test_file: Annotated[str, typer.Option("--test-file", "-f")] = DEFAULT_TEST_FILE,
    device: Annotated[str, typer.Option(help="cuda (GPU budget) or cpu (RSS budget)")] = "cuda",
    engine: Annotated[
        list[str] | None, typer.Option("--engine", help="engines to search (default: installed)")
    ] = None,
    precision: Annotated[
        list[str] | None,
        typer.Option("--precision", help="ENGINE=PRECISION, repeatable (default: per device)"),
    ] = None,
    beam_sizes: Annotated[list[int] | None, typer.Option("--beam-size")] = None,
    batch_sizes: Annotated[
        list[int] | None, typer.Option("--batch-size", help="0: sequential decoding")
    ] = None,
    wer_tolerance: Annotated[float, typer.Option(help="accepted WER above the best")] = 0.01,
    finalists: Annotated[int, typer.Option(min=1, help="configurations to confirm")] = 3,
    screen_file: Annotated[
        str | None, typer.Option(help="shorter audio to screen on (default: the test file)")
    ] = None,
    warmup: Annotated[int, typer.Option(min=0, help="confirmation warm-up runs")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="confirmation timed runs")] = 3,
    exhaustive: Annotated[
        bool, typer.Option("--grid", help="time every configuration fully instead of searching")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="append the probes' rows to this JSONL")] = None,
) -> None:
    """The fastest configuration within a memory budget and a WER tolerance, searched over
    engine, precision, beam size and batch size; prints the pick and the Pareto front."""
    from transcription_benchmarks.backends.registry import check_name
    from transcription_benchmarks.matrix.runner import append_row, run_cell, run_group
    from transcription_benchmarks.studies.autotune import (
        MATRIX,
        SearchSpace,
        budget_for,
        grid,
        search,
    )

    kind = "cpu" if device == "cpu" else "gpu"
    budget = budget_for(instance_type, memory_mb, kind=kind)
    engines = [check_name(name) for name in engine or []]
    precisions: dict[str, list[str]] = {}
    for pair in precision or []:
        ((key, value),) = _key_values([pair], "--precision", parse_json=False).items()
        precisions.setdefault(check_name(key), []).append(value)
    space = SearchSpace.default(
        kind,
        engines or list(precisions) or None,
        model=model,
        beam_sizes=beam_sizes,
        batch_sizes=[b or None for b in batch_sizes] if batch_sizes else None,
    )
    if precisions:
        space = space.model_copy(update={"engines": {**space.engines, **precisions}})
    check_writable(out, "--out")

    def record(rows):
        for row in rows:
            if out is not None:
                append_row(out, row)
            errors.print(f"{row.cell.label}: {row.status}", highlight=False, markup=False)
        return rows

    base = {"test_file": test_file, "device": device, "warmup": warmup, "repeats": repeats}
    if exhaustive:
        result = grid(
            model,
            base,
            budget,
            space,
            run_cell=lambda cell: record([run_cell(MATRIX, cell)])[0],
            wer_tolerance=wer_tolerance,
        )
    else:
        result = search(
            model,
            base,
            budget,
            space,
            run_group=lambda cells, limit: record(run_group(MATRIX, cells, memory_limit=limit)),
            run_cell=lambda cell: record([run_cell(MATRIX, cell)])[0],
            wer_tolerance=wer_tolerance,
            finalists=finalists,
            screen_file=screen_file,
        )
    console.print(result.describe(), highlight=False, markup=False)
    raise typer.Exit(0 if result.pick is not None else 1)


@app.command("parity")
def parity_command(
    model: Annotated[str, typer.Argument(help="model whose weights every engine runs")] = (
        DEFAULT_MODEL
    ),
    test_file: Annotated[
        list[str] | None, typer.Option("--test-file", "-f", help="repeatable (default: jfk, short)")
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option("--engine", help="engines (default: installed); first = reference"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2, help="batch size set against sequential")] = 4,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the verdicts as JSON")
    ] = None,
) -> None:
    """Parity verdicts at greedy decoding: engines on the same weights, and batched against
    sequential decoding; word agreement, first differing word, segment boundaries."""
    from transcription_benchmarks.backends.registry import check_name
    from transcription_benchmarks.report.parity import parity_report
    from transcription_benchmarks.studies.engines import GREEDY, batch_invariance, engine_parity

    engines = [check_name(name) for name in engine or []] or None
    files = test_file or ["jfk.flac", "short.flac"]
    args = GREEDY.model_copy(update={"device": device})
    check_writable(json_out, "--json")
    engines_rows = engine_parity(model, files, args, engines)
    batch_rows = batch_invariance(model, files, args, engines, batch_size)
    console.print(parity_report([*engines_rows, *batch_rows]), highlight=False, markup=False)
    if json_out is not None:
        rows = [r.model_dump(mode="json") for r in (*engines_rows, *batch_rows)]
        json_out.write_text(json.dumps(rows, indent=2) + "\n")


@app.command("memory-vs-length")
def memory_vs_length_command(
    model: Annotated[str, typer.Argument(help="model to measure")] = DEFAULT_MODEL,
    minutes: Annotated[
        list[float] | None, typer.Option("--minutes", help="audio durations (default 1, 10, 60)")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="a BenchArgs option, KEY=VALUE (e.g. compute_type=int8)"),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "auto",
    out: Annotated[Path | None, typer.Option(help="append each run's row to this JSONL")] = None,
) -> None:
    """Peak RSS and GPU memory against audio length, on generated speech; exit 1 when memory
    grows faster than the decoded audio explains."""
    from transcription_benchmarks.args import BenchArgs
    from transcription_benchmarks.matrix.runner import append_row, run_cell
    from transcription_benchmarks.studies.memory_length import memory_against_length

    args = {"device": device, **_key_values(option or [], "--option")}
    BenchArgs.build(**args)  # a bad option fails here, before any speech is generated
    check_writable(out, "--out")

    def run(cell):
        errors.print(f"{cell.label} of speech ...", highlight=False)
        row = run_cell("memory-vs-length", cell)
        if out is not None:
            append_row(out, row)
        return row

    study = memory_against_length(model, args, run, minutes=minutes or (1, 10, 60))
    console.print(study.table(), highlight=False, markup=False)
    raise typer.Exit(1 if study.flagged else 0)


@app.command("deploy")
def deploy_command(
    name: Annotated[str, typer.Argument(help="endpoint name prefix; a UTC timestamp is appended")],
    model_data: Annotated[
        str, typer.Argument(help="s3:// URI of a model.tar.gz, or a local directory or archive")
    ],
    source_dir: Annotated[
        Path | None, typer.Option(help="directory with inference.py, packed as code/")
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(help="execution role ARN (else $TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE)"),
    ] = None,
    instance_type: Annotated[str, typer.Option()] = "ml.g4dn.xlarge",
    asynchronous: Annotated[
        bool, typer.Option("--async/--realtime", help="async inference (audio over 6 MB)")
    ] = True,
    bucket: Annotated[str | None, typer.Option(help="staging bucket")] = None,
    region: Annotated[str | None, typer.Option(help="default: AWS_REGION / profile")] = None,
    image_uri: Annotated[str | None, typer.Option(help="default: the pinned HF DLC")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for InService")] = 1800,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="KEY=VALUE for the model's environment, repeatable (e.g. "
            "SAGEMAKER_MODEL_SERVER_VMARGS='-XX:-UseContainerSupport -Xmx1g')",
        ),
    ] = None,
) -> None:
    """Deploy a model artifact to a SageMaker endpoint and wait until it is InService."""
    from transcription_benchmarks.aws.deploy import deploy_endpoint

    environment = _key_values(env or [], "--env", parse_json=False)
    with errors.status(f"deploying {name} on {instance_type}"):
        deployed = deploy_endpoint(
            name,
            model_data,
            source_dir,
            role,
            instance_type,
            asynchronous,
            bucket,
            region=region,
            image_uri=image_uri,
            environment=environment,
            timeout_s=timeout,
        )
    errors.print(f"image {deployed.image_uri}, model {deployed.model_data}", highlight=False)
    console.print(deployed.endpoint_name, highlight=False)


@app.command("teardown")
def teardown_command(
    endpoint: Annotated[str, typer.Argument(help="the endpoint name deploy printed")],
    region: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Delete an endpoint, its config and its model; pieces already gone are listed."""
    from transcription_benchmarks.aws.deploy import teardown

    report = teardown(endpoint, region=region)
    for what in report.deleted:
        console.print(f"deleted {what}", highlight=False)
    for what in report.missing:
        console.print(f"not found {what}", highlight=False)


@app.command("predict")
def predict_command(
    endpoint: Annotated[str, typer.Argument(help="a deployed SageMaker endpoint's name")],
    test_file: Annotated[
        str, typer.Option("--test-file", "-f", help="path or test-audio name")
    ] = DEFAULT_TEST_FILE,
    params: Annotated[
        str | None, typer.Option(help='JSON, e.g. \'{"single": {"beam_size": 5}}\'')
    ] = None,
    asynchronous: Annotated[
        bool | None,
        typer.Option("--async/--realtime", help="default: as the endpoint is configured"),
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="where async input is staged")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for an async answer")] = 900,
    json_out: Annotated[Path | None, typer.Option("--json", help="write segments+info")] = None,
) -> None:
    """Transcribe a file on a deployed SageMaker endpoint (real-time or async)."""
    from transcription_benchmarks.aws.predict import predict_aws

    check_writable(json_out, "--json")
    segments, info = predict_aws(
        endpoint,
        test_file,
        _params_object(params),
        region=region,
        asynchronous=asynchronous,
        bucket=bucket,
        timeout_s=timeout,
    )
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {"segments": [s.model_dump() for s in segments], "info": info.model_dump()},
                indent=2,
            )
        )
    _print_prediction(segments, info)


@app.command("bench-remote")
def bench_remote_command(
    matrix: Annotated[str, typer.Argument(help="gpu, cpu (built-in) or a matrix TOML file")],
    instance_type: Annotated[
        list[str], typer.Option("--instance-type", "-i", help="repeat: one training job each")
    ],
    yes: Annotated[
        bool, typer.Option("--yes", help="confirm the instance-hours printed; required")
    ] = False,
    role: Annotated[
        str | None,
        typer.Option(help="execution role ARN (else $TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE)"),
    ] = None,
    spot: Annotated[bool, typer.Option(help="managed spot training")] = False,
    max_wait: Annotated[
        int | None, typer.Option(help="spot: seconds of waiting plus running (default 2x runtime)")
    ] = None,
    max_runtime: Annotated[int, typer.Option(help="seconds per job; bounds the cost")] = 3 * 3600,
    image: Annotated[
        str | None, typer.Option(help="training image (default: the pinned HF PyTorch DLC)")
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="staging bucket (default SageMaker's)")] = None,
    region: Annotated[str | None, typer.Option(help="default: AWS_REGION / profile")] = None,
    out: Annotated[Path, typer.Option(help="directory for results.jsonl and job outputs")] = Path(
        "results/remote"
    ),
    prices: Annotated[
        Path | None, typer.Option(help="price table TOML (default: the shipped one)")
    ] = None,
    poll: Annotated[float, typer.Option(help="seconds between status checks")] = 30,
) -> None:
    """Run a matrix on several SageMaker instance types at once; merge the rows side by side."""
    from transcription_benchmarks.aws.remote import bench_remote
    from transcription_benchmarks.report.by_instance import side_by_side_table
    from transcription_benchmarks.report.prices import load_prices

    table = load_prices(prices)
    run = bench_remote(
        matrix,
        instance_type,
        role=role,
        confirm=yes,
        out=out,
        region=region,
        bucket=bucket,
        image=image,
        spot=spot,
        max_wait_s=max_wait,
        max_runtime_s=max_runtime,
        prices=table,
        poll_s=poll,
        echo=lambda line: errors.print(line, highlight=False, markup=False),
    )
    console.print(side_by_side_table(run.rows, table, run.plan.region), highlight=False)
    errors.print(f"merged rows in {run.results}", highlight=False)


@app.command("package")
def package_command(
    model: Annotated[str, typer.Argument(help="hub id, local dir or packaged id")] = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for the artifact")] = Path(
        "dist"
    ),
    backend: Annotated[BackendName, typer.Option(help="the engine that serves it")] = (
        "faster-whisper"
    ),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    compute_type: Annotated[
        ComputeType, typer.Option(help="faster-whisper, whisper.cpp")
    ] = "default",
    dtype: Annotated[TorchDType | None, typer.Option(help="transformers, openai-whisper")] = None,
) -> None:
    """Build model_artifact.tar.gz: the model files and code/ (handler, pinned requirements,
    this package's wheel) for the Hugging Face inference container."""
    from transcription_benchmarks.backends.registry import check_name
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.package import package

    config = ServingConfig(
        backend=check_name(backend), device=device, compute_type=compute_type, dtype=dtype
    )
    console.print(str(package(model, out, backend, config=config)), highlight=False)


@app.command("serve-local")
def serve_local_command(
    model: Annotated[
        str, typer.Argument(help="an unpacked artifact, or anything `bench` takes")
    ] = DEFAULT_MODEL,
    backend: Annotated[BackendName | None, typer.Option(help="default: faster-whisper")] = None,
    host: Annotated[
        str, typer.Option(help="the address to bind; other than loopback needs --expose")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    expose: Annotated[
        bool,
        typer.Option(help="serve on a non-loopback --host: any machine that reaches it may call"),
    ] = False,
    workers: Annotated[int, typer.Option(help="MMS worker processes, one model each")] = 1,
    config: Annotated[
        Path | None,
        typer.Option(help="a serving.json (limits, request_timeout_s, device...) for the model"),
    ] = None,
    response_timeout: Annotated[
        int | None, typer.Option(help="MMS's response timeout in seconds (default 60)")
    ] = None,
) -> None:
    """Run the local endpoint (Multi Model Server + the inference toolkit, no Docker) until
    Ctrl-C or SIGTERM, which stop the server and its workers too."""
    import signal
    import time

    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.local import exposure, is_loopback, start_local_endpoint

    if not is_loopback(host):
        if not expose:
            raise typer.BadParameter(
                f"{host} is not a loopback address: {exposure(host, port)} Add --expose if "
                "that is meant.",
                param_hint="--host",
            )
        errors.print(f"warning: {exposure(host, port)}", highlight=False, markup=False)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the server's context manager: all stopped

    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), stop)
    serving = ServingConfig.read_file(config) if config else None
    try:
        with start_local_endpoint(
            model,
            backend=backend,
            host=host,
            port=port,
            workers=workers,
            config=serving,
            response_timeout_s=response_timeout,
            expose=expose,
        ) as server:
            errors.print(
                f"serving {model} on {server.url} (log: {server.log}); Ctrl-C stops it",
                highlight=False,
            )
            while server.process.poll() is None:
                time.sleep(1)
            raise BenchError(f"the model server exited:\n{server.log_tail()}")
    except KeyboardInterrupt:
        errors.print("stopped", highlight=False)


@app.command("predict-local")
def predict_local_command(
    test_file: Annotated[str, typer.Argument(help="path or test-audio name")] = DEFAULT_TEST_FILE,
    params: Annotated[
        str | None, typer.Option(help='JSON, e.g. \'{"batch": {"batch_size": 8}}\'')
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE, dotted keys nest: single.beam_size=1 (repeatable)"),
    ] = None,
    url: Annotated[str | None, typer.Option(help="default: http://127.0.0.1:8080")] = None,
) -> None:
    """Transcribe a file on the running local endpoint (`tbench serve-local`)."""
    from transcription_benchmarks.serving.local import predict_local

    parsed = _params_object(params) or {}
    for key, value in _key_values(param or [], "--param").items():
        *parents, leaf = key.split(".")
        node = parsed
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    segments, info = predict_local(test_file, parsed or None, url=url)
    _print_prediction(segments, info)


@app.command("version")
def version_command() -> None:
    """Print the versions this environment would benchmark with."""
    from transcription_benchmarks.measure.environment import fingerprint

    console.print_json(fingerprint().model_dump_json())


@app.command("doctor")
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="the diagnosis as JSON")] = False,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="print the torch + ctranslate2 install line this machine's driver runs "
            "(compat/stack.py's choice; TORCH_SPEC overrides the torch) instead of probing",
        ),
    ] = False,
    install: Annotated[
        bool, typer.Option("--install", help="with --fix: run that line with this python")
    ] = False,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary", help="only the issues that apply here, one line each with its fix"
        ),
    ] = False,
) -> None:
    """Probe this env's CUDA stack (torch, ctranslate2, cuBLAS, cuDNN, driver) against the known
    issues; exit 1 when one applies to this machine."""
    if fix or install:
        _doctor_fix(install)
        return
    from transcription_benchmarks.compat.doctor import diagnose, render, render_summary

    diagnosis = diagnose()
    # typer.echo, not rich: the report's [APPLIES] tags would be read as rich markup.
    if as_json:
        typer.echo(diagnosis.model_dump_json(indent=1))
    elif summary:
        typer.echo(render_summary(diagnosis) or "No known issue applies.")
    else:
        typer.echo(render(diagnosis))
    raise typer.Exit(1 if diagnosis.failing else 0)


def _doctor_fix(install: bool) -> None:
    import shlex
    import subprocess
    import sys

    from transcription_benchmarks.compat.stack import choice_for_this_machine

    choice = choice_for_this_machine()
    if not choice.gpu:
        typer.echo(f"No NVIDIA GPU here ({choice.error}): no CUDA stack to choose.")
        return
    if choice.stack is None:
        typer.echo(f"No CUDA stack fits this machine: {choice.refusal}", err=True)
        raise typer.Exit(1)
    stack = choice.stack
    typer.echo(f"# {stack.reason}")
    line = stack.install_command(sys.executable)
    typer.echo(shlex.join(line))
    if install:
        raise typer.Exit(subprocess.run(line, check=False).returncode)


@app.command("compat-table")
def compat_table_command(
    results: Annotated[Path, typer.Argument(help="folder of <cell>.json from `nox -s compat`")],
    select_args: Annotated[
        list[str] | None, typer.Argument(help="cell ids, torch=V, ct2=V, scenario=ID")
    ] = None,
) -> None:
    """Observed against expected for the compat matrix: prints the Markdown table, writes
    table.md and table.json beside the results, exits 1 on a contradiction."""
    from transcription_benchmarks.compat.matrix import default_matrix, select
    from transcription_benchmarks.compat.verdict import (
        failed,
        proof_problems,
        render_json,
        render_markdown,
        verdict_rows,
    )

    matrix = default_matrix()
    try:
        selection = select(matrix, list(select_args or []))
    except (KeyError, ValueError) as exc:
        raise InvalidOptionError(str(exc)) from None
    rows = verdict_rows(matrix, selection, results)
    problems = proof_problems(rows)
    markdown = render_markdown(rows, problems)
    results.mkdir(parents=True, exist_ok=True)
    (results / "table.md").write_text(markdown)
    (results / "table.json").write_text(render_json(rows, problems))
    typer.echo(markdown)
    raise typer.Exit(1 if failed(rows, problems) else 0)


def main() -> None:
    try:
        app()
    except BenchError as exc:
        # Escaped: a message may hold brackets ("[/v1]") that rich would read as markup.
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
