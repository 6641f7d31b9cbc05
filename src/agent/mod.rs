//! The exec agent: the warm container's long-lived process when this
//! binary is static (binary.rs). Podman starts it as
//! `<MOUNT>/agent --internal-agent` under catatonit (`--init`, which reaps
//! every orphan), inside every namespace and restriction of the container,
//! so what it starts gets them too.
//!
//! A warm call connects to its socket (`sock/agent` in the state directory,
//! see container/warm_dir.rs), sends argv, env, cwd and its own stdin, stdout and stderr
//! (wire.rs); the agent starts the command in a process group of its own
//! with those descriptors, so the command writes straight into the caller's
//! pipes, and sends back the exit status. A signal the caller gets is
//! passed on to the command's group and every process of the call (see
//! stop.rs); a caller that goes away (even SIGKILLed: its socket closes)
//! has its command's processes killed.
//!
//! What a call started does not outlive it: before it reports the exit
//! status, the agent kills every leftover process of the container (see
//! [`reap`]) but for those of calls still running and of calls that asked
//! to keep theirs (`--keep-processes`).
//!
//! It also owns the idle TTL: it reads `last-use` and `ttl` from the
//! read-only state mount and exits once the container is idle past its
//! TTL and no connection is open. It holds no lock of the host's: a
//! command could hold any lock the agent can reach. Instead a connection
//! counts as a call from the moment the agent accepts it and says ready;
//! a call that connects while the agent is ending sees the connection
//! close before ready and makes a new container.
//!
//! Commands run as the agent's uid, so the agent makes itself non-dumpable:
//! they can neither ptrace it nor take its listening socket, and the host
//! checks (SO_PEERCRED) that whoever answers on the socket is the process
//! it started.

pub mod binary;
pub mod client;
pub mod server;
pub mod wire;

use crate::container::warm_dir::AGENT_FILE;
use crate::container::watcher::MOUNT;

/// The argument that makes this binary the agent (never a user's option:
/// it is checked before the command line is parsed, and only as argv[1]).
pub const ARG: &str = "--internal-agent";

/// With it, the agent also forwards the container's proxy connections
/// (`--allow-host`, see proxy/forward.rs).
pub const FORWARD: &str = "--forward";

/// The container's command for an agent.
pub fn command(forward: bool) -> Vec<String> {
    let mut v = vec![format!("{MOUNT}/{AGENT_FILE}"), ARG.into()];
    if forward {
        v.push(FORWARD.into());
    }
    v
}
