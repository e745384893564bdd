# The NixOS options services.bitpoll sets, declared with the types their nixpkgs declarations
# have (checked against the nixpkgs 26.05 sources; see the module's report), and nothing more:
# a misspelled or invented option fails here as it would on NixOS. Used with nixpkgs' lib alone.
{ lib, ... }:
let
  inherit (lib) mkOption types;

  # NixOS's unitOption (nixos/lib/systemd-unit-options.nix): a scalar or a list of scalars.
  unitScalar = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
  ];
  unitOption = types.either unitScalar (types.listOf unitScalar);
  unitSection = mkOption {
    type = types.attrsOf unitOption;
    default = { };
  };

  commonUnitOptions = {
    description = mkOption {
      type = types.str;
      default = "";
    };
    documentation = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    after = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    requires = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    wantedBy = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    unitConfig = unitSection;
  };

  submoduleOf = options: types.attrsOf (types.submodule { inherit options; });
  anyAttrs = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  bool = mkOption {
    type = types.bool;
    default = false;
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };

    users.users = mkOption {
      default = { };
      type = submoduleOf {
        isSystemUser = bool;
        group = mkOption {
          type = types.str;
          default = "";
        };
        description = mkOption {
          type = types.str;
          default = "";
        };
      };
    };
    users.groups = mkOption {
      default = { };
      type = submoduleOf { };
    };

    systemd.package = mkOption { type = types.package; };

    systemd.services = mkOption {
      default = { };
      type = submoduleOf (
        commonUnitOptions
        // {
          serviceConfig = unitSection;
          environment = mkOption {
            type = types.attrsOf (
              types.nullOr (
                types.oneOf [
                  types.str
                  types.path
                  types.package
                ]
              )
            );
            default = { };
          };
          path = mkOption {
            type = types.listOf (
              types.oneOf [
                types.package
                types.str
              ]
            );
            default = [ ];
          };
          stopIfChanged = mkOption {
            type = types.bool;
            default = true;
          };
          restartIfChanged = mkOption {
            type = types.bool;
            default = true;
          };
        }
      );
    };

    systemd.sockets = mkOption {
      default = { };
      type = submoduleOf (
        commonUnitOptions
        // {
          listenStreams = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          socketConfig = unitSection;
        }
      );
    };

    systemd.timers = mkOption {
      default = { };
      type = submoduleOf (commonUnitOptions // { timerConfig = unitSection; });
    };

    systemd.tmpfiles.settings = mkOption {
      default = { };
      type = types.attrsOf (
        types.attrsOf (
          types.attrsOf (
            types.submodule {
              options = {
                mode = mkOption {
                  type = types.str;
                  default = "-";
                };
                user = mkOption {
                  type = types.str;
                  default = "-";
                };
                group = mkOption {
                  type = types.str;
                  default = "-";
                };
              };
            }
          )
        )
      );
    };

    services.postgresql = {
      enable = bool;
      package = mkOption { type = types.package; };
      ensureDatabases = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      ensureUsers = mkOption {
        default = [ ];
        type = types.listOf (
          types.submodule {
            options = {
              name = mkOption { type = types.str; };
              ensureDBOwnership = bool;
            };
          }
        );
      };
    };

    services.nginx = {
      enable = bool;
      group = mkOption {
        type = types.str;
        default = "nginx";
      };
      recommendedProxySettings = bool;
      recommendedGzipSettings = bool;
      recommendedOptimisation = bool;
      recommendedTlsSettings = bool;
      upstreams = mkOption {
        default = { };
        type = submoduleOf { servers = anyAttrs; };
      };
      virtualHosts = mkOption {
        default = { };
        type = submoduleOf {
          forceSSL = bool;
          enableACME = bool;
          locations = mkOption {
            default = { };
            type = submoduleOf {
              proxyPass = mkOption {
                type = types.nullOr types.str;
                default = null;
              };
              root = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              extraConfig = mkOption {
                type = types.lines;
                default = "";
              };
              recommendedProxySettings = bool;
            };
          };
        };
      };
    };
  };
}
