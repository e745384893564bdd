# The options of services.bitpoll (database.nix and nginx.nix declare those of their parts, beside
# their configuration). Every option has a type, a default, an example and a description;
# defaults that depend on other options say so in `defaultText`.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkOption
    mkPackageOption
    types
    ;

  cfg = config.services.bitpoll;
  # The first allowed host that names one machine (not a pattern such as ".example.org" or "*").
  publicHost = lib.findFirst (
    host: !lib.hasPrefix "." host && !lib.hasInfix "*" host
  ) "localhost" cfg.allowedHosts;
  settingsFormat = pkgs.formats.json { };

  # A secret given as a file: absolute, read by systemd (LoadCredential=) when the service starts.
  # Store paths and Nix path literals are rejected by an assertion (module/assertions.nix) that
  # says why, rather than by the type, so the message can name the remedy.
  secretFileOption =
    { what, example }:
    mkOption {
      type = types.nullOr types.path;
      default = null;
      inherit example;
      description = ''
        File holding ${what}, read by systemd when the service starts and handed to it as a
        credential (`LoadCredential=`), so it may be readable by root only. Give the path as a
        string: the file must not be in the Nix store, which every local user can read.

        When `null`, the service generates one on its first start and keeps it in
        {file}`''${dataDir}/secrets/` with mode 0600; backups include it.
      '';
    };
in
{
  options.services.bitpoll = {
    enable = mkEnableOption "Bitpoll, the web application for polls and meeting scheduling";

    package = mkPackageOption pkgs "bitpoll" {
      # The flake's overlay provides pkgs.bitpoll; without the overlay, take the flake's package.
      example = "bitpoll-nix.packages.\${pkgs.stdenv.hostPlatform.system}.bitpoll";
    };

    user = mkOption {
      type = types.str;
      default = "bitpoll";
      example = "polls";
      description = ''
        User the service runs as. The module creates it (a system user) when left at the
        default. With a local PostgreSQL database this is also the database role
        (peer authentication).
      '';
    };

    group = mkOption {
      type = types.str;
      default = "bitpoll";
      example = "polls";
      description = "Group the service runs as; created when left at the default.";
    };

    dataDir = mkOption {
      type = types.externalPath;
      default = "/var/lib/bitpoll";
      example = "/srv/bitpoll";
      description = ''
        State directory: the SQLite database, generated secrets and the marker of the last
        migration. Everything to back up lives here. Below {file}`/var/lib` systemd creates it
        (`StateDirectory=`); elsewhere the module creates it with tmpfiles. Mode 0700.
      '';
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "::1";
      description = ''
        Address systemd listens on for the service (socket activation). Ignored when
        {option}`services.bitpoll.unixSocket` is set.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      example = 8000;
      description = "TCP port systemd listens on for the service.";
    };

    unixSocket = mkOption {
      type = types.nullOr types.externalPath;
      default = null;
      example = "/run/bitpoll/bitpoll.sock";
      description = ''
        Listen on this unix socket instead of {option}`services.bitpoll.listenAddress` and
        {option}`services.bitpoll.port`. The socket belongs to root with mode 0660 and to
        nginx's group when {option}`services.bitpoll.nginx.enable` is set (else to
        {option}`services.bitpoll.group`).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether to open {option}`services.bitpoll.port` in the firewall. Not needed behind the
        nginx virtual host, which opens nothing itself either.
      '';
    };

    allowedHosts = mkOption {
      type = types.listOf types.str;
      default =
        if cfg.nginx.enable then
          [ cfg.nginx.hostName ]
        else
          [
            "localhost"
            "127.0.0.1"
            "[::1]"
          ];
      defaultText = literalExpression ''
        if config.services.bitpoll.nginx.enable
        then [ config.services.bitpoll.nginx.hostName ]
        else [ "localhost" "127.0.0.1" "[::1]" ]
      '';
      example = [ "polls.example.org" ];
      description = ''
        Host names Bitpoll answers to (Django's `ALLOWED_HOSTS`); a request for any other `Host`
        gets 400 Bad Request. Must name the public host name whenever Bitpoll is reachable from
        other machines.
      '';
    };

    baseUrl = mkOption {
      type = types.strMatching "https?://[^/]+(/.*)?";
      default =
        if cfg.nginx.enable then
          "${if cfg.nginx.forceSSL || cfg.nginx.enableACME then "https" else "http"}://${cfg.nginx.hostName}"
        else
          "http://${publicHost}:${toString cfg.port}";
      defaultText = literalExpression ''
        if config.services.bitpoll.nginx.enable
        then "''${if nginx.forceSSL || nginx.enableACME then "https" else "http"}://''${nginx.hostName}"
        else "http://<the first host name in allowedHosts, or localhost>:''${toString config.services.bitpoll.port}"
      '';
      example = "https://polls.example.org";
      description = ''
        The URL users reach Bitpoll at (`BASE_URL`), used in links and mails. With `https` the
        session and CSRF cookies are marked secure and the URL's origin is trusted for form posts
        (`CSRF_TRUSTED_ORIGINS`).
      '';
    };

    workers = mkOption {
      type = types.ints.positive;
      default = 2;
      example = 8;
      description = ''
        Number of gunicorn worker processes, each serving four requests at a time (threads).
        Each worker holds its own copy of the application's memory.
      '';
    };

    outboundAddresses = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "localhost"
        "192.0.2.25/32"
      ];
      description = ''
        Addresses the service may open connections to, in the syntax of systemd's
        `IPAddressAllow=` (addresses, prefixes, `localhost`, `link-local`, `multicast`, `any`).
        Needed for a PostgreSQL server reached over TCP, an SMTP server for mail and CalDAV
        calendars; include the DNS resolver when those are given by name.

        When empty, the service has no network at all (`PrivateNetwork=`): it receives its
        listening socket from systemd and reaches a local PostgreSQL through its unix socket.
        Incoming connections are never filtered by this list.
      '';
    };

    secretKeyFile = secretFileOption {
      what = "Django's `SECRET_KEY` (any long random string)";
      example = "/run/keys/bitpoll-secret-key";
    };

    encryptionKeyFile = secretFileOption {
      what = "the key that encrypts stored calendar URLs (`FIELD_ENCRYPTION_KEY`, a urlsafe-base64 Fernet key of 32 bytes; losing it makes those URLs unreadable)";
      example = "/run/keys/bitpoll-encryption-key";
    };

    secretSettings = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = {
        EMAIL_HOST_PASSWORD = "/run/secrets/bitpoll-smtp-password";
        AUTH_LDAP_BIND_PASSWORD = "/run/secrets/bitpoll-ldap-password";
        OPENID_CLIENT_SECRET = "/run/secrets/bitpoll-openid-client-secret";
      };
      description = ''
        Settings whose values are secrets, such as passwords and client secrets: each maps a
        Django or Bitpoll setting name to a file holding its value. systemd reads the file when
        the service starts and hands it over as the credential `setting_<name in lower case>`
        (`LoadCredential=`), so it may be readable by root only; the settings file in the Nix
        store only names that credential (`{"_secret": "setting_email_host_password"}`), and
        the package's settings module puts the file's content, without surrounding whitespace,
        in its place. Give the paths as strings: the files must not be in the Nix store.

        `SECRET_KEY`, `FIELD_ENCRYPTION_KEY` and the database password have their own options:
        {option}`services.bitpoll.secretKeyFile`, {option}`services.bitpoll.encryptionKeyFile`
        and {option}`services.bitpoll.database.passwordFile`. Backups do not include these
        files.
      '';
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          SITE_NAME = mkOption {
            type = types.str;
            default = "Bitpoll";
            example = "Example Polls";
            description = "Name of the site shown in page titles and mails.";
          };

          REGISTER_ENABLED = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = ''
              Whether visitors may register accounts. Registration mails a confirmation link,
              so it needs working mail (`EMAIL_HOST`, {option}`services.bitpoll.outboundAddresses`).
            '';
          };

          GROUP_MANAGEMENT = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = ''
              Whether users may create and manage groups. Cannot be combined with OpenID
              (`OPENID_ENABLED`), which manages groups itself.
            '';
          };

          PUBLIC_POLLS = mkOption {
            type = types.bool;
            default = true;
            example = false;
            description = "Whether polls may be listed publicly.";
          };

          CALENDAR_ENABLED = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = ''
              Whether users may connect CalDAV calendars to see their appointments while voting.
              The server then fetches URLs users enter, so it is off by default and needs
              {option}`services.bitpoll.outboundAddresses`; restrict those to the calendar servers
              you trust.
            '';
          };

          LANGUAGE_CODE = mkOption {
            type = types.str;
            default = "en-us";
            example = "de-de";
            description = "Default language; browsers asking for another supported one get it.";
          };

          TIME_ZONE = mkOption {
            type = types.str;
            default = "UTC";
            example = "Europe/Berlin";
            description = "Default time zone of dates and times (an IANA time zone name).";
          };

          EMAIL_HOST = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "localhost";
            description = ''
              SMTP server for outgoing mail; `null` leaves Django's default (localhost). The
              server must be reachable: see {option}`services.bitpoll.outboundAddresses`.
            '';
          };

          EMAIL_PORT = mkOption {
            type = types.nullOr types.port;
            default = null;
            example = 587;
            description = "SMTP port; `null` leaves Django's default (25).";
          };

          EMAIL_USE_TLS = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = "Whether to use STARTTLS with the SMTP server.";
          };

          DEFAULT_FROM_EMAIL = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "polls@example.org";
            description = "Sender address of outgoing mail; `null` leaves Django's default.";
          };
        };
      };
      default = { };
      example = {
        SITE_NAME = "Example Polls";
        LANGUAGE_CODE = "de-de";
        TIME_ZONE = "Europe/Berlin";
        IMPRINT_URL = "https://example.org/imprint";
      };
      description = ''
        Bitpoll and Django settings, written to a JSON file in the Nix store that the package's
        settings module reads (`BITPOLL_SETTINGS_FILE`). Any setting of Bitpoll's
        {file}`settings.py` may be given; options left `null` are omitted. `ALLOWED_HOSTS`,
        `BASE_URL`, `DATABASES` and the proxy settings are filled in from the other options.
        Secrets do not belong here, the file is world-readable: give them in
        {option}`services.bitpoll.secretSettings`. See
        <https://github.com/fsinfuhh/Bitpoll/blob/master/bitpoll/settings.py>.
      '';
    };

    backup = {
      enable = mkEnableOption "scheduled backups (database, secrets and a verified manifest) with `bitpoll-ops backup`";

      onCalendar = mkOption {
        type = types.str;
        default = "daily";
        example = "*-*-* 03:15:00";
        description = ''
          When backups run, as a systemd calendar expression (`OnCalendar=`, see
          {manpage}`systemd.time(7)`). A run missed while the machine was off runs at boot.
        '';
      };

      directory = mkOption {
        type = types.externalPath;
        default = "/var/backup/bitpoll";
        example = "/mnt/backup/bitpoll";
        description = ''
          Where backup archives go (mode 0600, owned by the service user). Archives contain
          the secrets: keep the directory private.
        '';
      };

      keep = mkOption {
        type = types.ints.positive;
        default = 14;
        example = 30;
        description = "How many archives to keep; older ones are deleted after a backup.";
      };
    };

    clearsessions = {
      enable = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = "Whether to remove expired sessions from the database periodically.";
      };

      onCalendar = mkOption {
        type = types.str;
        default = "daily";
        example = "weekly";
        description = "When expired sessions are removed (`OnCalendar=`).";
      };
    };
  };
}
