# The shape of every Bitpoll unit as a pure function of a few paths and settings: only builtins,
# no nixpkgs. The NixOS module (module/service.nix) feeds it the real package and maps the result
# into systemd.services/sockets/timers; module/render.nix turns the same result into unit files,
# which ci/render-units writes for the systemd container testbed and the offline hardening gate.
#
# Result:
#   units.<file name> = { Unit = { ... }; Service|Socket|Timer = { ... }; Install = { ... };
#                         environment = { NAME = value; }; }   # environment: services only
#   tmpfiles = [ { type; path; mode; user; group; } ]           # directories created at boot
#   wrappers.<name> = { command; properties = [ "Key=value" ]; }  # bitpoll-manage, bitpoll-ops:
#                                                   the transient unit each runs its command in
#
# Section values follow the NixOS unit option model (see module/hardening.nix).
{
  # The package's root ($out): bin/bitpoll-{server,ops,manage} live below it.
  package,
  # The JSON settings file the package's shim reads (BITPOLL_SETTINGS_FILE).
  settingsFile,
  stateDir ? "/var/lib/bitpoll",
  user ? "bitpoll",
  group ? "bitpoll",
  # Either { address; port; } for TCP or { socket; socketGroup; socketMode; } for a unix socket.
  listen ? {
    address = "127.0.0.1";
    port = 8080;
  },
  workers ? 2,
  # { address; port; } of the Prometheus metrics listener, or null for none (listen.nix).
  metrics ? null,
  # systemd credential name -> file on the host, passed with LoadCredential=.
  # Names: secret_key, encryption_key, db_password, and setting_<name> for a setting whose
  # value is a secret (ARCHITECTURE.md).
  credentials ? { },
  # Addresses the services may connect to (IPAddressAllow= syntax); empty means no network.
  outboundAddresses ? [ ],
  # Units every Bitpoll service needs running first, e.g. [ "postgresql.target" ].
  requiredUnits ? [ ],
  # Units every Bitpoll service starts after, when they are there, without needing them (a
  # local PostgreSQL server that the module did not set up): After= and Wants=.
  wantedUnits ? [ ],
  # { enable; directory; keep; onCalendar; }, each optional (defaults below).
  backup ? { },
  # { enable; onCalendar; }, each optional (defaults below).
  clearsessions ? { },
  # Extra environment for every unit (the testbed sets PATH; NixOS uses its own `path`).
  extraEnvironment ? { },
  # How long the prestart step (migrations) plus the server start may take.
  startTimeout ? "15min",
}:
let
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  removePrefix =
    prefix: s:
    builtins.substring (builtins.stringLength prefix) (
      builtins.stringLength s - builtins.stringLength prefix
    ) s;
  isAbsolute = p: hasPrefix "/" (toString p);
  check = cond: message: if cond then true else throw "bitpoll units: ${message}";
  # Keys of `given` that `defaults` does not know: typos would otherwise be ignored silently.
  unknownKeys =
    given: defaults: builtins.filter (key: !(defaults ? ${key})) (builtins.attrNames given);

  backupDefaults = {
    enable = false;
    directory = "/var/backup/bitpoll";
    keep = 14;
    onCalendar = "daily";
  };
  clearsessionsDefaults = {
    enable = true;
    onCalendar = "daily";
  };
  backupCfg = backupDefaults // backup;
  clearsessionsCfg = clearsessionsDefaults // clearsessions;

  isUnixSocket = listen ? socket;

  # Quote one ExecStart argument the way systemd.syntax(7) reads it: inside double quotes,
  # backslash and quote are escaped, `$` and `%` are doubled so systemd expands nothing.
  escapeArg =
    arg:
    let
      s = toString arg;
    in
    if builtins.match "[A-Za-z0-9_./:=@+,-]+" s != null then
      s
    else
      "\"${builtins.replaceStrings [ "\\" "\"" "$" "%" ] [ "\\\\" "\\\"" "$$" "%%" ] s}\"";
  command = args: builtins.concatStringsSep " " (map escapeArg args);

  bin = name: "${package}/bin/${name}";

  # Directories under /var/lib are systemd's StateDirectory= (created and owned for the unit on
  # start); anywhere else they are created by tmpfiles and opened with ReadWritePaths=.
  stateUnderVarLib = hasPrefix "/var/lib/" stateDir;
  backupUnderVarLib = hasPrefix "/var/lib/" backupCfg.directory;
  stateDirectories = if stateUnderVarLib then [ (removePrefix "/var/lib/" stateDir) ] else [ ];
  stateRwPaths = if stateUnderVarLib then [ ] else [ stateDir ];

  environment = {
    BITPOLL_SETTINGS_FILE = toString settingsFile;
    BITPOLL_STATE_DIR = stateDir;
  }
  # bitpoll-ops writes its archives (and restore its safety backup) there by default.
  // (if backupCfg.enable then { BITPOLL_BACKUP_DIR = backupCfg.directory; } else { })
  // extraEnvironment;

  badCredentialNames = builtins.filter (name: builtins.match "[a-z0-9_-]+" name == null) (
    builtins.attrNames credentials
  );
  loadCredentials = map (name: "${name}:${toString credentials.${name}}") (
    builtins.attrNames credentials
  );

  hardening = import ./hardening.nix { inherit outboundAddresses; };

  # What every Bitpoll process shares: identity, environment, state, secrets and sandbox.
  common = {
    User = user;
    Group = group;
    WorkingDirectory = stateDir;
    StateDirectoryMode = "0700";
    LoadCredential = loadCredentials;
  }
  // (if stateDirectories == [ ] then { } else { StateDirectory = stateDirectories; })
  // (if stateRwPaths == [ ] then { } else { ReadWritePaths = stateRwPaths; })
  // hardening;

  dependencies = {
    After = [ "network.target" ] ++ requiredUnits ++ wantedUnits;
    Requires = requiredUnits;
  }
  // (if wantedUnits == [ ] then { } else { Wants = wantedUnits; });

  # bitpoll.socket, with metrics bitpoll-metrics.socket, the target they are bound to, and what
  # metrics add to the service (listen.nix).
  listening = import ./listen.nix { inherit listen group metrics; };
  socketUnits = listening.units;

  serviceUnit = listening.withMetrics {
    Unit = dependencies // {
      Description = "Bitpoll poll and meeting scheduler";
      Documentation = [ "https://github.com/fsinfuhh/Bitpoll" ];
      After = dependencies.After ++ [ "bitpoll.socket" ];
      # The socket keeps accepting while the service restarts; a stopped socket stops the
      # service with it.
      Requires = dependencies.Requires ++ [ "bitpoll.socket" ];
    };
    Service = common // {
      # gunicorn reports readiness itself once its workers are up; it is the main process
      # (bitpoll-server execs it), so only it may notify.
      Type = "notify";
      NotifyAccess = "main";
      # Secrets are created and migrations applied (only when the package changed) before the
      # server starts; a crash during migration is retried on the next start.
      ExecStartPre = [
        (command [
          (bin "bitpoll-ops")
          "prestart"
        ])
      ];
      ExecStart = command [
        (bin "bitpoll-server")
        "--workers"
        workers
      ];
      Restart = "on-failure";
      RestartSec = "2s";
      # A configuration error (a missing or malformed setting or secret) makes the server exit
      # with EX_CONFIG and one line naming it; restarting cannot fix it, so the unit fails at
      # once. (systemd applies this to the main process only: the same error found by prestart
      # is retried until the start rate limit stops it, a few seconds later.)
      RestartPreventExitStatus = 78;
      TimeoutStartSec = startTimeout;
    };
    Install.WantedBy = [ "multi-user.target" ];
    inherit environment;
  };

  oneshot = description: args: extraService: {
    Unit = dependencies // {
      Description = description;
      # Started together (at boot, a missed timer fires at once), the job waits until the
      # service's prestart has created the secrets and migrated the database.
      After = dependencies.After ++ [ "bitpoll.service" ];
    };
    Service =
      common
      // {
        Type = "oneshot";
        ExecStart = command args;
        # Housekeeping yields to the web service.
        Nice = 10;
        IOSchedulingClass = "idle";
      }
      // extraService;
    inherit environment;
  };

  timer = description: onCalendar: {
    Unit.Description = description;
    Timer = {
      OnCalendar = onCalendar;
      # A run missed while the machine was off happens at the next boot.
      Persistent = true;
    };
    Install.WantedBy = [ "timers.target" ];
  };

  # The backup job, and `bitpoll-ops` run by hand, may also write the backup directory.
  backupAccess =
    if !backupCfg.enable then
      { }
    else if backupUnderVarLib then
      { StateDirectory = stateDirectories ++ [ (removePrefix "/var/lib/" backupCfg.directory) ]; }
    else
      { ReadWritePaths = stateRwPaths ++ [ backupCfg.directory ]; };

  backupUnits =
    if backupCfg.enable then
      {
        "bitpoll-backup.service" = oneshot "Bitpoll backup" [
          (bin "bitpoll-ops")
          "backup"
          "--dir"
          backupCfg.directory
          "--keep"
          backupCfg.keep
        ] backupAccess;
        "bitpoll-backup.timer" = timer "Scheduled Bitpoll backup" backupCfg.onCalendar;
      }
    else
      { };

  clearsessionsUnits =
    if clearsessionsCfg.enable then
      {
        "bitpoll-clearsessions.service" = oneshot "Remove expired Bitpoll sessions" [
          (bin "bitpoll-manage")
          "clearsessions"
        ] { };
        "bitpoll-clearsessions.timer" =
          timer "Scheduled removal of expired Bitpoll sessions" clearsessionsCfg.onCalendar;
      }
    else
      { };

  dirRule = path: {
    type = "d";
    inherit path user group;
    mode = "0700";
  };

  toProperty =
    name: value:
    let
      values = if builtins.isList value then value else [ value ];
      show =
        v:
        if v == true then
          "true"
        else if v == false then
          "false"
        else
          toString v;
    in
    map (v: "${name}=${show v}") values;

  properties =
    service:
    builtins.concatLists (builtins.attrValues (builtins.mapAttrs toProperty service))
    # systemd-run splits a property's value into words: quote each assignment as one.
    ++ map (
      name:
      "Environment=\"${
        builtins.replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] "${name}=${environment.${name}}"
      }\""
    ) (builtins.attrNames environment);

  checks = [
    (check (isAbsolute package) "package must be an absolute path, got '${toString package}'")
    (check (isAbsolute stateDir) "stateDir must be an absolute path, got '${stateDir}'")
    (check (
      builtins.match "/|.*/" stateDir == null
    ) "stateDir must name a directory without a trailing '/', got '${stateDir}'")
    (check (unknownKeys backup backupDefaults == [ ])
      "unknown backup settings: ${toString (unknownKeys backup backupDefaults)} (known: enable directory keep onCalendar)"
    )
    (check (unknownKeys clearsessions clearsessionsDefaults == [ ])
      "unknown clearsessions settings: ${toString (unknownKeys clearsessions clearsessionsDefaults)} (known: enable onCalendar)"
    )
    (check (isAbsolute settingsFile) "settingsFile must be an absolute path, got '${toString settingsFile}'")
    (check (
      isUnixSocket || (listen ? address && listen ? port)
    ) "listen needs either socket, or address and port")
    (check (!isUnixSocket || isAbsolute listen.socket) "listen.socket must be an absolute path")
    (check (builtins.isInt workers && workers >= 1) "workers must be a positive integer")
    (check (
      !backupCfg.enable || isAbsolute backupCfg.directory
    ) "backup.directory must be an absolute path, got '${toString backupCfg.directory}'")
    (check (
      builtins.isInt backupCfg.keep && backupCfg.keep >= 1
    ) "backup.keep must be a positive integer")
    (check (builtins.all (name: isAbsolute credentials.${name}) (
      builtins.attrNames credentials
    )) "every credential must be an absolute path")
    # The names the settings module looks up; they also keep LoadCredential='s ':' separator
    # and the credentials directory's file names unambiguous.
    (check (badCredentialNames == [ ])
      "credential names must be lower-case letters, digits, '_' and '-', got: ${toString badCredentialNames}"
    )
  ];

  units = {
    "bitpoll.service" = serviceUnit;
  }
  // socketUnits
  // backupUnits
  // clearsessionsUnits;
in
assert builtins.all (x: x) checks;
{
  inherit units;

  tmpfiles =
    (if stateUnderVarLib then [ ] else [ (dirRule stateDir) ])
    ++ (if backupCfg.enable && !backupUnderVarLib then [ (dirRule backupCfg.directory) ] else [ ]);

  # `bitpoll-manage` runs the package's manage.py in a transient unit with exactly the service's
  # user, credentials, environment and sandbox (systemd-run -p ...), so commands see what the
  # service sees and secrets stay out of the caller's environment.
  # `bitpoll-manage` and `bitpoll-ops` run in a transient unit with exactly the service's user,
  # credentials, environment and sandbox (systemd-run -p ...), so commands see what the service
  # sees and secrets stay out of the caller's environment.
  wrappers = {
    bitpoll-manage = {
      command = bin "bitpoll-manage";
      properties = properties common;
    };
    bitpoll-ops = {
      command = bin "bitpoll-ops";
      properties = properties (
        common
        // backupAccess
        // {
          # `bitpoll-ops restore` refuses while the server runs. kill(pid, 0) finds the
          # process of server.pid even where /proc hides it, but only its command line in
          # /proc tells the server from an unrelated process that reuses a stale pid file's
          # pid. Each unit has its own user namespace (PrivateUsers=), and
          # ProtectProc=invisible hides processes across namespaces even of the same user, so
          # restore would refuse on any such pid. The other processes stay visible but
          # unreadable beyond their command line, as for any unprivileged user.
          ProtectProc = "default";
        }
      );
    };
  };
}
