# Prometheus metrics: the options of the metrics listener, the scrape job for a Prometheus on the
# same machine, and the assertions on both. The units themselves (bitpoll-metrics.socket, the
# service's Sockets=, environment and runtime directory) come from listen.nix through units.nix;
# service.nix passes them these options. docs/monitoring.md says what is exported.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    hasInfix
    hasPrefix
    mkIf
    mkOption
    types
    ;
  cfg = config.services.bitpoll;
  metrics = cfg.metrics;

  isLoopback = address: hasPrefix "127." address || address == "::1";
  # systemd's ListenStream= takes an address, not a host name.
  isAddress =
    address:
    builtins.match "[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+" address != null
    || (hasInfix ":" address && builtins.match "[0-9a-fA-F:.]+" address != null);

  # A wildcard listener accepts on loopback too; a local Prometheus connects there.
  scrapeAddress =
    if metrics.listenAddress == "0.0.0.0" then
      "127.0.0.1"
    else if metrics.listenAddress == "::" then
      "::1"
    else
      metrics.listenAddress;
  scrapeTarget =
    if hasInfix ":" scrapeAddress then
      "[${scrapeAddress}]:${toString metrics.port}"
    else
      "${scrapeAddress}:${toString metrics.port}";
in
{
  options.services.bitpoll.metrics = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether to export Prometheus metrics: requests by method, status and view, their
        latency, database queries and errors, the version, and the number of polls and votes.
        They are counted across all gunicorn workers and survive a worker's restart (the
        multiprocess mode of prometheus_client, in {file}`/run/bitpoll-metrics`, which systemd
        empties on every start of the service).

        They are served on a listener of their own,
        {option}`services.bitpoll.metrics.listenAddress` and
        {option}`services.bitpoll.metrics.port` (`GET /metrics`), never on Bitpoll's own
        listener nor through the nginx virtual host. See
        {option}`services.bitpoll.metrics.scrape` for a Prometheus on the same machine.
      '';
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "::1";
      description = ''
        IP address systemd listens on for the metrics (the socket unit `bitpoll-metrics.socket`).
        The metrics answer anyone who can connect, without authentication, so an address other
        machines can reach needs {option}`services.bitpoll.metrics.allowRemote`.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 8081;
      example = 8090;
      description = ''
        TCP port of the metrics listener. The default sits next to Bitpoll's own 8080, below
        Prometheus' own 9090 and outside 9100-9999, where Prometheus' exporters (and the
        defaults of {option}`services.prometheus.exporters`) have their ports. Must differ from
        {option}`services.bitpoll.port`.
      '';
    };

    allowRemote = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether {option}`services.bitpoll.metrics.listenAddress` may be an address other
        machines reach (a wildcard such as `0.0.0.0`, or a non-loopback address), for a
        Prometheus elsewhere to scrape. Anyone who reaches that address can then read the
        metrics; the module opens no firewall port for them.
      '';
    };

    scrape = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether this machine's Prometheus ({option}`services.prometheus.enable`) scrapes
        Bitpoll: adds the job `bitpoll` with the metrics listener as its one static target to
        {option}`services.prometheus.scrapeConfigs`.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(metrics.enable && cfg.unixSocket == null && metrics.port == cfg.port);
        message = "services.bitpoll.metrics.port and services.bitpoll.port are both ${toString cfg.port}, so the metrics socket and Bitpoll's own cannot both listen: set services.bitpoll.metrics.port to another port.";
      }
      {
        assertion = !(metrics.enable && !isAddress metrics.listenAddress);
        message = ''services.bitpoll.metrics.listenAddress is "${metrics.listenAddress}", but systemd listens on an IP address, not a host name: set it to 127.0.0.1 or ::1.'';
      }
      {
        assertion =
          !(
            metrics.enable
            && isAddress metrics.listenAddress
            && !metrics.allowRemote
            && !isLoopback metrics.listenAddress
          );
        message = "services.bitpoll.metrics.listenAddress is ${metrics.listenAddress}, which other machines can reach, and the metrics answer anyone without authentication: set it to 127.0.0.1 or ::1 (and scrape with a Prometheus on this machine), or set services.bitpoll.metrics.allowRemote = true to let a Prometheus elsewhere scrape it.";
      }
      {
        assertion = !(metrics.scrape && !metrics.enable);
        message = "services.bitpoll.metrics.scrape adds a Prometheus scrape job for Bitpoll's metrics, but they are off: set services.bitpoll.metrics.enable = true.";
      }
      {
        assertion = !(metrics.scrape && !config.services.prometheus.enable);
        message = "services.bitpoll.metrics.scrape adds a scrape job to this machine's Prometheus, but services.prometheus.enable is off: set services.prometheus.enable = true, or leave services.bitpoll.metrics.scrape off and scrape from the Prometheus you run elsewhere.";
      }
    ];

    services.prometheus.scrapeConfigs = mkIf (metrics.enable && metrics.scrape) [
      {
        job_name = "bitpoll";
        static_configs = [ { targets = [ scrapeTarget ]; } ];
      }
    ];
  };
}
