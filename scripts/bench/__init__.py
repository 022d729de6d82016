"""`make bench`: opsguard's speed figures, measured side by side in one run on a throwaway cluster
and printed as a table of figures and goals. One module per part (each module's docstring says what
it measures and why the baseline is the one it is); `python -m bench PART ...` runs parts alone,
and `--check` (`make bench CHECK=1`) exits 1 when a figure misses its goal."""
