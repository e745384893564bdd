# Misconfigurations caught at evaluation time. Each message names the option to set and why.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    all
    elem
    hasPrefix
    mkIf
    ;
  cfg = config.services.bitpoll;
  db = cfg.database;
  settings = cfg.settings;

  isLoopback =
    address:
    hasPrefix "127." address
    || elem address [
      "::1"
      "localhost"
    ];
  localHostNames = [
    "localhost"
    "127.0.0.1"
    "[::1]"
    "::1"
  ];

  # Reachable from other machines: through nginx, or on a non-loopback TCP address.
  publicTcp = cfg.unixSocket == null && !isLoopback cfg.listenAddress;
  reachable = cfg.nginx.enable || publicTcp;
  hosts = settings.ALLOWED_HOSTS or [ ];
  onlyLocalHosts = all (host: elem host localHostNames) hosts;

  postgresql = db.type == "postgresql";
  # A host given as a directory is a unix socket; anything else is reached over the network.
  remoteTcpHost = db.host != null && !hasPrefix "/" db.host;
  offline = cfg.outboundAddresses == [ ];

  # A secret file must stay out of the world-readable Nix store.
  secretAssertions = option: value: [
    {
      assertion = !builtins.isPath value;
      message = ''services.bitpoll.${option} is a Nix path literal, which Nix copies into the world-readable store when used: give it as a string, e.g. "/run/keys/bitpoll-${option}".'';
    }
    {
      assertion = value == null || builtins.isPath value || !hasPrefix builtins.storeDir (toString value);
      message = "services.bitpoll.${option} points into the Nix store (${toString value}), which every local user can read: keep the secret outside the store (e.g. in /run/keys, or with sops-nix or agenix) and give that path.";
    }
  ];

  # A password or client secret in `settings` would land in the store; a value
  # {"_secret": "<name>"} there is only a reference to a credential, no secret itself.
  isPlainSecret =
    key:
    settings ? ${key}
    && settings.${key} != null
    && !(builtins.isAttrs settings.${key} && settings.${key} ? _secret);
  plainSecretWarning = key: {
    when = isPlainSecret key;
    message = "services.bitpoll.settings.${key} is written to the world-readable Nix store: remove it and set services.bitpoll.secretSettings.${key} to a file holding the secret instead.";
  };

  # The keys that have options of their own, which the settings module never reads from settings.
  ownSecretOptions = {
    SECRET_KEY = "secretKeyFile";
    FIELD_ENCRYPTION_KEY = "encryptionKeyFile";
  };

  secretSettingAssertions =
    name:
    secretAssertions "secretSettings.${name}" cfg.secretSettings.${name}
    ++ [
      {
        assertion = builtins.match "[A-Z][A-Z0-9_]*" name != null;
        message = "services.bitpoll.secretSettings.${name} does not name a setting (upper-case letters, digits and underscores): rename it to the Django or Bitpoll setting it holds, e.g. EMAIL_HOST_PASSWORD.";
      }
      {
        assertion = !(ownSecretOptions ? ${name});
        message = "services.bitpoll.secretSettings.${name} is not read: set services.bitpoll.${ownSecretOptions.${name} or ""} to that file instead.";
      }
      {
        assertion = !(settings ? ${name} && settings.${name} != null);
        message = "services.bitpoll.secretSettings.${name} and services.bitpoll.settings.${name} are both set: remove the one in services.bitpoll.settings.";
      }
    ];

  settingSecretAssertion = key: remedy: {
    assertion = !(settings ? ${key});
    message = "services.bitpoll.settings.${key} would be written to the world-readable Nix store: remove it and set ${remedy} instead.";
  };
in
{
  config = mkIf cfg.enable {
    assertions =
      secretAssertions "secretKeyFile" cfg.secretKeyFile
      ++ secretAssertions "encryptionKeyFile" cfg.encryptionKeyFile
      ++ secretAssertions "database.passwordFile" db.passwordFile
      ++ builtins.concatMap secretSettingAssertions (builtins.attrNames cfg.secretSettings)
      ++ [
        (settingSecretAssertion "SECRET_KEY" "services.bitpoll.secretKeyFile (or leave it unset: a key is generated)")
        (settingSecretAssertion "FIELD_ENCRYPTION_KEY" "services.bitpoll.encryptionKeyFile (or leave it unset: a key is generated)")
        {
          assertion = !(settings ? DATABASES.default.PASSWORD);
          message = "services.bitpoll.settings.DATABASES.default.PASSWORD would be written to the world-readable Nix store: remove it and set services.bitpoll.database.passwordFile instead.";
        }
        {
          assertion = hosts != [ ];
          message = ''services.bitpoll.allowedHosts is empty, so Bitpoll would answer every request with 400 Bad Request: list the host names it is reached by, e.g. [ "polls.example.org" ].'';
        }
        {
          assertion = !(reachable && hosts != [ ] && onlyLocalHosts);
          message =
            if cfg.nginx.enable && cfg.allowedHosts == [ cfg.nginx.hostName ] then
              ''services.bitpoll.nginx.hostName is "${cfg.nginx.hostName}", so Bitpoll would answer every request from other machines with 400 Bad Request: set services.bitpoll.nginx.hostName to the public host name (e.g. "polls.example.org").''
            else
              ''services.bitpoll.allowedHosts names no public host (${toString hosts}), yet Bitpoll is reachable from other machines (${
                if cfg.nginx.enable then "through nginx" else "on ${cfg.listenAddress}"
              }), so every such request would get 400 Bad Request: set services.bitpoll.allowedHosts, e.g. [ "polls.example.org" ].'';
        }
        {
          assertion = !(postgresql && db.createLocally && remoteTcpHost);
          message = ''services.bitpoll.database.createLocally creates the database on this machine, but services.bitpoll.database.host is "${toString db.host}": set services.bitpoll.database.createLocally = false to use that server, or database.host = null for the local one.'';
        }
        {
          assertion = !(postgresql && db.createLocally && db.user != cfg.user);
          message = ''services.bitpoll.database.user ("${db.user}") must equal services.bitpoll.user ("${cfg.user}") with database.createLocally: peer authentication lets the service user in only as the role of the same name.'';
        }
        {
          assertion = !(postgresql && db.createLocally && db.name != db.user);
          message = ''services.bitpoll.database.name ("${db.name}") must equal services.bitpoll.database.user ("${db.user}") with database.createLocally: services.postgresql.ensureUsers grants ownership only of the database named like the role.'';
        }
        {
          assertion = !(postgresql && !db.createLocally && db.host == null);
          message = "services.bitpoll.database.host is not set, but database.createLocally is false: set services.bitpoll.database.host to the PostgreSQL server (or createLocally = true).";
        }
        {
          assertion = !(postgresql && remoteTcpHost && offline);
          message = ''services.bitpoll.database.host "${toString db.host}" is reached over the network, but services.bitpoll.outboundAddresses is empty, so the service has no network: add the server's address (and the DNS resolver's when host is a name) to services.bitpoll.outboundAddresses.'';
        }
        {
          assertion = !((settings.OPENID_ENABLED or false) && settings.GROUP_MANAGEMENT);
          message = "services.bitpoll.settings.OPENID_ENABLED and services.bitpoll.settings.GROUP_MANAGEMENT cannot both be on (OpenID manages groups itself): set services.bitpoll.settings.GROUP_MANAGEMENT = false.";
        }
        {
          assertion = !(cfg.openFirewall && cfg.unixSocket != null);
          message = "services.bitpoll.openFirewall opens TCP port ${toString cfg.port}, but the service listens on services.bitpoll.unixSocket (${toString cfg.unixSocket}): unset one of them.";
        }
      ];

    # Each warning: when it applies, and what to do.
    warnings = map (w: w.message) (
      builtins.filter (w: w.when) [
        {
          when = cfg.openFirewall && cfg.unixSocket == null && isLoopback cfg.listenAddress;
          message = "services.bitpoll.openFirewall opens port ${toString cfg.port}, but services.bitpoll.listenAddress is ${cfg.listenAddress}, which other machines cannot reach: set services.bitpoll.listenAddress (e.g. \"0.0.0.0\") or leave the firewall closed.";
        }
        {
          when = cfg.nginx.enable && publicTcp;
          message = "services.bitpoll.nginx.enable makes Bitpoll trust X-Forwarded-Proto, but the service also listens on ${cfg.listenAddress}, where clients could send that header themselves: set services.bitpoll.listenAddress = \"127.0.0.1\" or use services.bitpoll.unixSocket.";
        }
        {
          when = settings.CALENDAR_ENABLED && offline;
          message = "services.bitpoll.settings.CALENDAR_ENABLED is on, but services.bitpoll.outboundAddresses is empty, so the service cannot fetch calendars: add the calendar servers' addresses to services.bitpoll.outboundAddresses.";
        }
        {
          when = settings.REGISTER_ENABLED && offline;
          message = "services.bitpoll.settings.REGISTER_ENABLED is on, but services.bitpoll.outboundAddresses is empty, so confirmation mails cannot be sent: add the SMTP server's address (\"localhost\" for a local relay) to services.bitpoll.outboundAddresses.";
        }
        {
          when = settings.EMAIL_HOST != null && offline;
          message = "services.bitpoll.settings.EMAIL_HOST is set, but services.bitpoll.outboundAddresses is empty, so no mail can be sent: add the SMTP server's address to services.bitpoll.outboundAddresses.";
        }
        {
          when = (settings.OPENID_ENABLED or false) && offline;
          message = "services.bitpoll.settings.OPENID_ENABLED is on, but services.bitpoll.outboundAddresses is empty, so the service cannot reach the OpenID provider: add its address to services.bitpoll.outboundAddresses.";
        }
        {
          when = settings ? AUTH_LDAP_SERVER_URI && offline;
          message = "services.bitpoll.settings.AUTH_LDAP_SERVER_URI is set, but services.bitpoll.outboundAddresses is empty, so the service cannot reach the LDAP server: add its address to services.bitpoll.outboundAddresses.";
        }
        {
          when = settings.DEBUG or false;
          message = "services.bitpoll.settings.DEBUG is on: every visitor sees tracebacks with configuration details; remove it outside development.";
        }
        (plainSecretWarning "EMAIL_HOST_PASSWORD")
        (plainSecretWarning "AUTH_LDAP_BIND_PASSWORD")
        (plainSecretWarning "OPENID_CLIENT_SECRET")
        {
          when = !postgresql && db.passwordFile != null;
          message = "services.bitpoll.database.passwordFile is ignored with services.bitpoll.database.type = \"sqlite\": remove it.";
        }
      ]
    );
  };
}
