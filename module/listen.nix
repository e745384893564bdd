# bitpoll.socket, and the target it is bound to so that a switch applies a changed socket: a
# pure function (builtins only) of how the service listens, used by units.nix.
{
  # Either { address; port; } for TCP or { socket; socketGroup; socketMode; } for a unix socket.
  listen,
  # The service's group, the default group of a unix socket.
  group,
}:
let
  isUnixSocket = listen ? socket;

  listenStream =
    if isUnixSocket then
      listen.socket
    else if builtins.match ".*:.*" listen.address != null then
      "[${listen.address}]:${toString listen.port}"
    else
      "${listen.address}:${toString listen.port}";

  # A specific address may not be configured yet when sockets.target starts, early at boot
  # (EADDRNOTAVAIL); FreeBind= binds it anyway. Wildcards need no address, and systemd brings
  # up the loopback device before any socket unit.
  isLoopback =
    address: builtins.match "127\\..*" address != null || address == "::1" || address == "localhost";
  needsFreeBind =
    !isUnixSocket
    && !(builtins.elem listen.address [
      "0.0.0.0"
      "::"
    ])
    && !(isLoopback listen.address);

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
  // (if needsFreeBind then { FreeBind = true; } else { });

  # switch-to-configuration leaves a changed socket unit alone, so a new ListenStream= (or any
  # other [Socket] setting) would wait for a reboot. The socket is bound to a target named
  # after its whole [Socket] section: a change removes the old target, which the switch stops,
  # and the socket (BindsTo=) and the service (Requires=) stop with it; the switch then starts
  # the active targets again, sockets.target brings the socket up with its new settings and
  # multi-user.target the service. A package-only upgrade keeps the target, so the socket stays
  # open and refuses nothing. The socket is ordered after the target, so stopping the target
  # waits until the socket and the service have stopped: the switch stops the old target
  # before systemd reloads the new files, and a stop still pending then would be replaced by
  # the start that follows.
  listenTarget = "bitpoll-listen-${
    builtins.substring 0 12 (builtins.hashString "sha256" (builtins.toJSON socketSection))
  }.target";
  listenTargetUnit.Unit.Description = "Bitpoll listens on ${listenStream}";

  socketUnit = {
    Unit = {
      Description = "Bitpoll listening socket";
      BindsTo = [ listenTarget ];
      After = [ listenTarget ];
    };
    Socket = socketSection;
    Install.WantedBy = [ "sockets.target" ];
  };

in
{
  "bitpoll.socket" = socketUnit;
  ${listenTarget} = listenTargetUnit;
}
