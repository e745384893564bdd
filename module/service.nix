# The service: units.nix fed with the real package and settings, mapped into NixOS's systemd
# options; the user, the directories, the admin commands and the firewall.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    attrNames
    filter
    filterAttrs
    hasSuffix
    isAttrs
    isList
    listToAttrs
    mapAttrs
    mapAttrs'
    mkIf
    nameValuePair
    optional
    optionalAttrs
    removeSuffix
    toLower
    ;

  cfg = config.services.bitpoll;
  settingsFormat = pkgs.formats.json { };

  # Typed settings left at null are omitted, so Bitpoll's and Django's own defaults apply.
  withoutNulls =
    value:
    if isAttrs value then
      mapAttrs (_: withoutNulls) (filterAttrs (_: v: v != null) value)
    else if isList value then
      map withoutNulls (filter (v: v != null) value)
    else
      value;

  # A secret setting reaches the service as a credential of its own; the settings file names it,
  # and the package's settings module reads it from $CREDENTIALS_DIRECTORY (ARCHITECTURE.md).
  # Setting names are upper case, so the lower-case name with the prefix is unique and never
  # one of the other credentials.
  secretSettingCredential = name: "setting_${toLower name}";

  settingsFile = settingsFormat.generate "bitpoll-settings.json" (
    withoutNulls cfg.settings
    // mapAttrs (name: _: { _secret = secretSettingCredential name; }) cfg.secretSettings
  );

  usesPostgresql = cfg.database.type == "postgresql";
  localPostgresql = usesPostgresql && cfg.database.createLocally;
  # pg_dump and psql for the ops tool's backup and restore; the server's own client when local.
  postgresqlClient = if localPostgresql then config.services.postgresql.package else pkgs.postgresql;

  # toString keeps a path as it is: a Nix path literal is not copied into the store here, and
  # assertions.nix rejects it with the reason.
  credentials = mapAttrs (_: toString) (
    filterAttrs (_: v: v != null) {
      secret_key = cfg.secretKeyFile;
      encryption_key = cfg.encryptionKeyFile;
      db_password = if usesPostgresql then cfg.database.passwordFile else null;
    }
    // mapAttrs' (name: file: nameValuePair (secretSettingCredential name) file) cfg.secretSettings
  );

  unitData = import ./units.nix {
    inherit (cfg)
      package
      user
      group
      workers
      outboundAddresses
      ;
    inherit settingsFile credentials;
    stateDir = cfg.dataDir;
    listen =
      if cfg.unixSocket != null then
        {
          socket = cfg.unixSocket;
          # nginx must be able to connect; nobody else needs to.
          socketGroup = if cfg.nginx.enable then config.services.nginx.group else cfg.group;
        }
      else
        {
          address = cfg.listenAddress;
          inherit (cfg) port;
        };
    # postgresql.target is reached once the server runs and ensureUsers/ensureDatabases ran.
    requiredUnits = optional localPostgresql "postgresql.target";
    # A PostgreSQL server on this machine that the module did not set up: start after it when
    # it is there, so prestart does not use up the start limit at boot while it comes up.
    wantedUnits = optional (
      usesPostgresql && !cfg.database.createLocally && config.services.postgresql.enable
    ) "postgresql.target";
    backup = {
      inherit (cfg.backup)
        enable
        directory
        keep
        onCalendar
        ;
    };
    clearsessions = {
      inherit (cfg.clearsessions) enable onCalendar;
    };
    # metrics.nix declares the options.
    metrics =
      if cfg.metrics.enable then
        {
          address = cfg.metrics.listenAddress;
          inherit (cfg.metrics) port;
        }
      else
        null;
  };

  rendered = import ./render.nix {
    inherit unitData;
    systemdRun = "${config.systemd.package}/bin/systemd-run";
    shell = pkgs.runtimeShell;
    extraProperties = optional usesPostgresql "Environment=PATH=${
      lib.makeBinPath [
        postgresqlClient
        pkgs.coreutils
      ]
    }";
  };

  unitsOfType =
    suffix:
    mapAttrs' (name: unit: nameValuePair (removeSuffix suffix name) unit) (
      filterAttrs (name: _: hasSuffix suffix name) unitData.units
    );

  # The [Unit] keys NixOS has dedicated options for; the rest goes to unitConfig.
  unitOptions = unit: {
    description = unit.Unit.Description;
    documentation = unit.Unit.Documentation or [ ];
    after = unit.Unit.After or [ ];
    requires = unit.Unit.Requires or [ ];
    wants = unit.Unit.Wants or [ ];
    bindsTo = unit.Unit.BindsTo or [ ];
    wantedBy = unit.Install.WantedBy or [ ];
    unitConfig = removeAttrs unit.Unit [
      "Description"
      "Documentation"
      "After"
      "Requires"
      "Wants"
      "BindsTo"
    ];
  };

  services = mapAttrs (
    name: unit:
    unitOptions unit
    // {
      inherit (unit) environment;
      serviceConfig = unit.Service;
    }
    // optionalAttrs (name == "bitpoll") {
      # Restart after the switch instead of stopping before it: the socket stays open and
      # queues connections meanwhile, so an upgrade refuses none.
      stopIfChanged = false;
    }
    // optionalAttrs (name != "bitpoll") {
      # Housekeeping jobs run on their timers, not because a configuration switch changed them.
      restartIfChanged = false;
    }
    // optionalAttrs (name == "bitpoll-backup" && usesPostgresql) {
      path = [ postgresqlClient ];
    }
  ) (unitsOfType ".service");

  sockets = mapAttrs (
    _: unit:
    unitOptions unit
    // {
      listenStreams = unit.Socket.ListenStream;
      socketConfig = removeAttrs unit.Socket [ "ListenStream" ];
    }
  ) (unitsOfType ".socket");

  timers = mapAttrs (
    _: unit:
    unitOptions unit
    // {
      timerConfig = unit.Timer;
    }
  ) (unitsOfType ".timer");

  # The listen target (units.nix): a name, a description, nothing else.
  targets = mapAttrs (_: unitOptions) (unitsOfType ".target");
in
{
  config = mkIf cfg.enable {
    users.users = mkIf (cfg.user == "bitpoll") {
      bitpoll = {
        isSystemUser = true;
        inherit (cfg) group;
        description = "Bitpoll service user";
      };
    };
    users.groups = mkIf (cfg.group == "bitpoll") { bitpoll = { }; };

    systemd.services = services;
    systemd.sockets = sockets;
    systemd.timers = timers;
    systemd.targets = targets;

    # Directories outside /var/lib (a custom dataDir, the backup directory).
    systemd.tmpfiles.settings."10-bitpoll" = mkIf (unitData.tmpfiles != [ ]) (
      listToAttrs (
        map (
          rule:
          nameValuePair rule.path {
            ${rule.type} = {
              inherit (rule) mode user group;
            };
          }
        ) unitData.tmpfiles
      )
    );

    # `bitpoll-manage createsuperuser`, `bitpoll-ops restore ARCHIVE`: run as root, they execute
    # in a transient unit with the service's user, credentials and sandbox.
    environment.systemPackages = map (name: pkgs.writeScriptBin name rendered."bin/${name}") (
      attrNames unitData.wrappers
    );

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];
  };
}
