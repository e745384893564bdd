# monitoring: the scenario reads the metrics on their own listener (127.0.0.1:8081, the
# default), so the server exports them. The server's own Prometheus scrapes them too: the
# build checks the generated scrape job with promtool, and its scrapes (served by gunicorn's
# master, not by a worker) leave the request counts the scenario compares alone.
_: {
  server = {
    services.bitpoll.metrics = {
      enable = true;
      scrape = true;
    };
    services.prometheus.enable = true;
  };
}
