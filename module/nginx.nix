# The optional nginx virtual host: static files straight from the package in the Nix store,
# everything else proxied to the service's socket.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    elem
    hasInfix
    mkDefault
    mkIf
    mkOption
    types
    ;
  cfg = config.services.bitpoll;

  # A wildcard listen address accepts on loopback too; connect there.
  connectAddress =
    if elem cfg.listenAddress [ "0.0.0.0" ] then
      "127.0.0.1"
    else if elem cfg.listenAddress [ "::" ] then
      "::1"
    else
      cfg.listenAddress;
  server =
    if cfg.unixSocket != null then
      "unix:${cfg.unixSocket}"
    else if hasInfix ":" connectAddress then
      "[${connectAddress}]:${toString cfg.port}"
    else
      "${connectAddress}:${toString cfg.port}";

  # The package's collected static files live in share/bitpoll/static (ARCHITECTURE.md), so
  # this root maps /static/<name> onto them.
  staticRoot = "${cfg.package}/share/bitpoll";
in
{
  options.services.bitpoll = {
    nginx = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether to serve Bitpoll through an nginx virtual host: static files straight from the
          package in the Nix store with far-future caching, everything else proxied to the
          service.
        '';
      };

      hostName = mkOption {
        type = types.str;
        default = "localhost";
        example = "polls.example.org";
        description = "Name of the virtual host (its `server_name`).";
      };

      forceSSL = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether to redirect HTTP to HTTPS (passed to the virtual host's `forceSSL`). Needs a
          certificate: {option}`services.bitpoll.nginx.enableACME` or the virtual host's
          `sslCertificate`.
        '';
      };

      enableACME = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether to get a certificate from Let's Encrypt for the virtual host (passed to its
          `enableACME`; see {option}`security.acme`).
        '';
      };
    };

  };

  config = mkIf (cfg.enable && cfg.nginx.enable) {
    services.nginx = {
      enable = true;
      recommendedProxySettings = mkDefault true;
      recommendedGzipSettings = mkDefault true;
      recommendedOptimisation = mkDefault true;
      recommendedTlsSettings = mkDefault true;

      upstreams.bitpoll.servers.${server} = { };

      virtualHosts.${cfg.nginx.hostName} = {
        inherit (cfg.nginx) forceSSL enableACME;

        locations = {
          "/" = {
            proxyPass = "http://bitpoll";
            # Host, X-Forwarded-For and X-Forwarded-Proto (replacing what the client sent),
            # which Django's SECURE_PROXY_SSL_HEADER relies on.
            recommendedProxySettings = true;
          };

          # Bitpoll answers its health endpoint to loopback peers, which nginx is: only this
          # machine's own probes may pass it on (package/files/bitpoll_health.py).
          "= /-/health" = {
            proxyPass = "http://bitpoll";
            recommendedProxySettings = true;
            extraConfig = ''
              allow 127.0.0.1;
              allow ::1;
              deny all;
              access_log off;
            '';
          };

          # Names with a content hash (name.0123456789ab.css, from staticfiles.json) never
          # change: cache them for a year.
          "~ \"^/static/.+\\.[0-9a-f]{12}\\.[A-Za-z0-9]+$\"" = {
            root = staticRoot;
            extraConfig = ''
              access_log off;
              add_header Cache-Control "public, max-age=31536000, immutable";
            '';
          };

          # Unhashed names may change with an upgrade: a day at most.
          "/static/" = {
            root = staticRoot;
            extraConfig = ''
              access_log off;
              expires 1d;
            '';
          };
        };
      };
    };
  };
}
