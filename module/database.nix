# PostgreSQL: the connection settings and, with createLocally, the database and role on this
# machine's server. SQLite needs nothing here: the package keeps it in the state directory.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkDefault
    mkIf
    mkMerge
    mkOption
    types
    ;
  cfg = config.services.bitpoll;
  db = cfg.database;
in
{
  options.services.bitpoll = {
    database = {
      type = mkOption {
        type = types.enum [
          "sqlite"
          "postgresql"
        ];
        default = "sqlite";
        example = "postgresql";
        description = ''
          Database backend. SQLite keeps the database in {option}`services.bitpoll.dataDir`
          and needs no setup.
        '';
      };

      createLocally = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = ''
          With PostgreSQL: whether to create the database and its role on this machine's
          PostgreSQL server ({option}`services.postgresql`) and connect over its unix socket
          with peer authentication (no password). Set to `false` for a remote server.
        '';
      };

      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "db.example.org";
        description = ''
          PostgreSQL server: a host name, an address or the directory of a unix socket.
          `null` means the local server's socket directory, {file}`/run/postgresql`.
        '';
      };

      port = mkOption {
        type = types.port;
        default = 5432;
        example = 5433;
        description = "PostgreSQL server port.";
      };

      name = mkOption {
        type = types.str;
        default = "bitpoll";
        example = "polls";
        description = "PostgreSQL database name.";
      };

      user = mkOption {
        type = types.str;
        default = cfg.user;
        defaultText = literalExpression "config.services.bitpoll.user";
        example = "polls";
        description = ''
          PostgreSQL role. With {option}`services.bitpoll.database.createLocally` it must equal
          the service user (peer authentication) and the database name.
        '';
      };

      passwordFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/run/keys/bitpoll-db-password";
        description = ''
          File holding the PostgreSQL password, handed to the service as a credential
          (`LoadCredential=`). Not needed with peer authentication over a local socket. Give
          the path as a string: the file must not be in the Nix store.
        '';
      };
    };

  };

  config = mkIf (cfg.enable && db.type == "postgresql") (mkMerge [
    {
      # The password is no setting: the package reads it from the db_password credential.
      services.bitpoll.settings.DATABASES = mkDefault {
        default = {
          ENGINE = "django.db.backends.postgresql";
          NAME = db.name;
          USER = db.user;
          HOST = if db.host == null then "/run/postgresql" else db.host;
          PORT = toString db.port;
        };
      };
    }
    (mkIf db.createLocally {
      # Peer authentication over the local socket: the service user connects as the role of
      # the same name, which owns the database of the same name. No password exists.
      services.postgresql = {
        enable = true;
        ensureDatabases = [ db.name ];
        ensureUsers = [
          {
            name = db.user;
            ensureDBOwnership = true;
          }
        ];
      };
    })
  ]);
}
