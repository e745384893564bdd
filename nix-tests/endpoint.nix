# Where the client reaches the server: the host and port of services.bitpoll.baseUrl, the URL
# the deployment announces. The VM tests wait for that port and map that host name to the
# server, so an administrator's configuration is tested under its own name.
{ lib }:
baseUrl:
let
  parts = builtins.match "(https?)://([^/:]+)(:([0-9]+))?(/.*)?" baseUrl;
  scheme = lib.elemAt parts 0;
  host = lib.elemAt parts 1;
  port = lib.elemAt parts 3;
in
if parts == null then
  throw "services.bitpoll.baseUrl `${baseUrl}`: not an http(s) URL the test client can reach"
else if
  lib.elem host [
    "localhost"
    "127.0.0.1"
    "[::1]"
  ]
then
  throw "services.bitpoll.baseUrl `${baseUrl}`: names this machine only; the tests reach Bitpoll from another machine, so set services.bitpoll.allowedHosts (or nginx.hostName) to the public host name"
else
  {
    inherit host;
    port =
      if port != null then
        lib.toInt port
      else if scheme == "https" then
        443
      else
        80;
  }
