# The settings Bitpoll reads: the typed and freeform `settings`, completed from the other options.
{
  config,
  lib,
  ...
}:
let
  inherit (lib) mkDefault mkIf mkMerge;
  cfg = config.services.bitpoll;
in
{
  config = mkIf cfg.enable {
    services.bitpoll.settings = mkMerge [
      {
        ALLOWED_HOSTS = mkDefault cfg.allowedHosts;
        BASE_URL = mkDefault cfg.baseUrl;
      }
      # nginx replaces any X-Forwarded-Proto a client sends (recommendedProxySettings), so
      # Django may trust it to tell HTTPS requests: secure cookies and CSRF checks then work
      # behind the TLS-terminating proxy.
      (mkIf cfg.nginx.enable {
        SECURE_PROXY_SSL_HEADER = mkDefault [
          "HTTP_X_FORWARDED_PROTO"
          "https"
        ];
      })
    ];
  };
}
