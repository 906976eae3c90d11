from transcription_benchmarks.cli import main

main()
