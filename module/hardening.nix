# The sandbox shared by every Bitpoll unit (the web service with its prestart step, the backup
# and clearsessions jobs, and the transient unit behind `bitpoll-manage`), as pure data: only
# builtins, no nixpkgs, so plain `nix-instantiate --eval` renders it and
# `systemd-analyze security --offline=true` scores it on machines without nixpkgs.
#
# Values follow the NixOS unit option model: a string, integer or boolean is one `Key=value`
# line; a list is one line per element; the empty string resets the directive (`Key=`).
#
# The service receives its listening socket from systemd (socket activation), so it never binds
# or accepts on its own network: by default it runs without any network at all. Everything it
# needs then is its state directory, the Nix store (read-only) and, for a local PostgreSQL, the
# server's socket in /run/postgresql (a file-system socket, reachable without network).
#
# Relaxations, each needed and each scored by ci/checks.d/40-hardening.sh:
# - AF_UNIX stays allowed: the service reports readiness over $NOTIFY_SOCKET (Type=notify) and
#   talks to a local PostgreSQL over its socket.
# - RootDirectory= is not used: the service needs its whole closure in the Nix store, which
#   ProtectSystem=strict already makes read-only.
# - ProtectClock= implies a read-only ACL entry for the real-time clock device (char-rtc), which
#   systemd-analyze counts although PrivateDevices= hides the device.
# - With `outboundAddresses` set (a remote database, an SMTP relay, CalDAV calendars), the
#   service shares the host's network and may open AF_INET/AF_INET6 sockets, but only to those
#   addresses (IPAddressDeny=any plus IPAddressAllow=); connections handed over by the socket unit
#   are not filtered by the service's IP access list.
#
# MemoryDenyWriteExecute= stays on: CPython and the compiled extensions Bitpoll imports
# (cryptography, lxml, psycopg2) do not create writable executable mappings; libffi >= 3.4 uses
# static trampolines for ctypes/cffi callbacks. The systemd container testbed proves it by
# serving real requests under this sandbox.
{
  outboundAddresses ? [ ],
}:
let
  offline = outboundAddresses == [ ];
in
{
  # No capabilities at all: the service runs as its own unprivileged user.
  CapabilityBoundingSet = "";
  AmbientCapabilities = "";
  NoNewPrivileges = true;
  RestrictSUIDSGID = true;
  # Other users appear as nobody; the user namespace also drops every capability outside it.
  PrivateUsers = true;
  RemoveIPC = true;
  KeyringMode = "private";
  # Files the service creates (database, secrets, backups) are readable by its user only.
  UMask = "0077";

  # File system: the whole tree is read-only; the state directory (StateDirectory=) and, for the
  # backup job, the backup directory (ReadWritePaths=) are the only writable places.
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateMounts = true;
  PrivateDevices = true;
  DevicePolicy = "closed";
  ProtectProc = "invisible";
  ProcSubset = "pid";

  # Kernel and host.
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  RestrictRealtime = true;
  RestrictNamespaces = true;

  # System calls: what ordinary services need, minus privileged and resource-control calls.
  # A denied call fails with EPERM instead of killing the process, so a library probing for an
  # optional feature gets an error it handles instead of a crash.
  SystemCallArchitectures = "native";
  SystemCallFilter = [
    "@system-service"
    "~@privileged @resources"
  ];
  SystemCallErrorNumber = "EPERM";

  # Network: none unless outbound addresses are configured (see the header).
  PrivateNetwork = offline;
  RestrictAddressFamilies =
    if offline then
      [ "AF_UNIX" ]
    else
      [
        "AF_UNIX"
        "AF_INET"
        "AF_INET6"
      ];
  IPAddressDeny = "any";
}
// (if offline then { } else { IPAddressAllow = outboundAddresses; })
