# bitpoll.socket, the optional bitpoll-metrics.socket, and the target both are bound to so that
# a switch applies a changed socket: a pure function (builtins only) of how the service
# listens, used by units.nix. Returns
#   units        the socket units and their listen target
#   withMetrics  a function adding to the service unit what the metrics listener needs (the
#                identity without metrics)
{
  # Either { address; port; } for TCP or { socket; socketGroup; socketMode; } for a unix socket.
  listen,
  # The service's group, the default group of a unix socket.
  group,
  # { address; port; } of the Prometheus metrics listener, or null for none.
  metrics ? null,
}:
let
  isUnixSocket = listen ? socket;

  tcpStream =
    address: port:
    if builtins.match ".*:.*" address != null then
      "[${address}]:${toString port}"
    else
      "${address}:${toString port}";

  # A specific address may not be configured yet when sockets.target starts, early at boot
  # (EADDRNOTAVAIL); FreeBind= binds it anyway. Wildcards need no address, and systemd brings
  # up the loopback device before any socket unit.
  isLoopback =
    address: builtins.match "127\\..*" address != null || address == "::1" || address == "localhost";
  needsFreeBind =
    address:
    !(builtins.elem address [
      "0.0.0.0"
      "::"
    ])
    && !(isLoopback address);
  freeBind = address: if needsFreeBind address then { FreeBind = true; } else { };

  listenStream = if isUnixSocket then listen.socket else tcpStream listen.address listen.port;

  socketSection = {
    ListenStream = [ listenStream ];
  }
  // (
    if isUnixSocket then
      {
        SocketUser = "root";
        SocketGroup = listen.socketGroup or group;
        SocketMode = listen.socketMode or "0660";
      }
    else
      { }
  )
  // (if isUnixSocket then { } else freeBind listen.address);

  # The metrics listener: systemd passes it to bitpoll.service beside bitpoll.socket, named
  # `metrics` in $LISTEN_FDNAMES, and gunicorn's master serves GET /metrics on it (the
  # package's bitpoll-server and its gunicorn hooks). A connection to it while the service is
  # stopped starts the service, like one to bitpoll.socket.
  metricsStream = tcpStream metrics.address metrics.port;
  metricsSection = {
    ListenStream = [ metricsStream ];
    FileDescriptorName = "metrics";
    Service = "bitpoll.service";
  }
  // freeBind metrics.address;

  # switch-to-configuration leaves a changed socket unit alone, so a new ListenStream= (or any
  # other [Socket] setting) would wait for a reboot. The sockets are bound to a target named
  # after their whole [Socket] sections: a change removes the old target, which the switch
  # stops, and the sockets (BindsTo=) and the service (Requires=) stop with it; the switch then
  # starts the active targets again, sockets.target brings the sockets up with their new
  # settings and multi-user.target the service. A package-only upgrade keeps the target, so
  # the sockets stay open and refuse nothing. The sockets are ordered after the target, so
  # stopping the target waits until they and the service have stopped: the switch stops the
  # old target before systemd reloads the new files, and a stop still pending then would be
  # replaced by the start that follows. Without metrics the name is that of bitpoll.socket's
  # section alone, as before metrics existed, so turning them on or off moves the target (the
  # service restarts with its new sockets) and nothing else does.
  hashed =
    if metrics == null then
      socketSection
    else
      [
        socketSection
        metricsSection
      ];
  listenTarget = "bitpoll-listen-${
    builtins.substring 0 12 (builtins.hashString "sha256" (builtins.toJSON hashed))
  }.target";
  listenTargetUnit.Unit.Description =
    "Bitpoll listens on ${listenStream}"
    + (if metrics == null then "" else " (metrics on ${metricsStream})");

  boundSocket = description: section: {
    Unit = {
      Description = description;
      BindsTo = [ listenTarget ];
      After = [ listenTarget ];
    };
    Socket = section;
    Install.WantedBy = [ "sockets.target" ];
  };

  # gunicorn's workers count into prometheus_client's multiprocess directory, which systemd
  # creates empty on every start (a RuntimeDirectory= is removed when the service stops), and
  # the master serves what they counted on the socket named `metrics`. Only the web service
  # gets any of it: the other units and the admin commands count nothing.
  metricsSocket = "bitpoll-metrics.socket";
  metricsDirectory = "bitpoll-metrics";
  addMetrics = unit: {
    Unit = unit.Unit // {
      # Like bitpoll.socket: metrics that were asked for are there, or the service does not
      # start (a port another program holds fails the socket, and the start names it). The
      # master would otherwise bind the address itself, which the sandbox refuses (no network,
      # AF_UNIX only), and stop the server after it had started.
      After = unit.Unit.After ++ [ metricsSocket ];
      Requires = unit.Unit.Requires ++ [ metricsSocket ];
    };
    Service = unit.Service // {
      Sockets = [
        "bitpoll.socket"
        metricsSocket
      ];
      RuntimeDirectory = [ metricsDirectory ];
      RuntimeDirectoryMode = "0700";
    };
    environment = unit.environment // {
      BITPOLL_METRICS_LISTEN = metricsStream;
      PROMETHEUS_MULTIPROC_DIR = "/run/${metricsDirectory}";
    };
  };
  withMetrics = unit: if metrics == null then unit else unit // addMetrics unit;

  valid =
    metrics == null
    || (
      builtins.isAttrs metrics
      && metrics ? address
      && metrics ? port
      && builtins.isInt metrics.port
      && metrics.port >= 1
      && metrics.port <= 65535
    );
in
if !valid then
  throw "bitpoll units: metrics needs address and port (1-65535), or null for none"
else
  {
    inherit withMetrics;
    units = {
      "bitpoll.socket" = boundSocket "Bitpoll listening socket" socketSection;
      ${listenTarget} = listenTargetUnit;
    }
    // (
      if metrics == null then
        { }
      else
        { ${metricsSocket} = boundSocket "Bitpoll Prometheus metrics socket" metricsSection; }
    );
  }
