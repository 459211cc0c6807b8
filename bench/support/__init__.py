"""What the benchmarks share, so that each bench/*.py keeps only what it measures.

- `processes`: children started and stopped by PID, ports, and what /proc says of them;
- `stack`: a scratch database, Redis, the service's environment, `serve` and its worker;
- `client`: accounts, uploads, downloads and raw HTTP/1.1 against a running service;
- `data`: generated inputs (random bytes, a server log, a large account in SQL);
- `report`: percentiles, PASS/FAIL verdicts and the machine's load.
"""
