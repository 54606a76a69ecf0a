"""cnnlab's benchmarks: `make bench` (python -m bench [NAME ...] [--quick]). Not tests: they print ratios taken
side by side in one run, A and B interleaved, medians of repeats, and write bench/results/NAME.json."""
