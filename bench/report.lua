-- wrk script used by bench.py: it changes nothing in the requests, only prints wrk's summary
-- as one JSON line (latencies in microseconds) so the numbers need no parsing of wrk's text.
-- errors.status counts responses with a status >= 400 ("Non-2xx or 3xx responses" in wrk's text).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
