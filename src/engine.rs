//! The seam between the lifecycle's decisions and the container engine, as
//! youki puts its system calls behind a trait: the few operations on which
//! pruning, reconciling, `--gc` and `ensure_warm` decide. [`Podman`] is the
//! one real engine; [`fake::Recording`] (unit tests only) answers from a
//! table and records what it was asked, so those decisions are tested
//! without Podman. Running a command (exec, one-shot calls, loads) needs
//! Podman's processes and stays on `Podman` itself; every end-to-end test
//! runs the real engine.

use crate::container::State;
use crate::container::list::{self, Listed};
use crate::error::{Error, Result};
use crate::image::listing::{self, StoredImage};
use crate::store::Podman;

pub trait Engine {
    /// Our containers: with our label and name prefix, nothing else.
    fn containers(&self) -> Result<Vec<Listed>>;
    /// The state of container `name`.
    fn state(&self, name: &str) -> Result<State>;
    /// Removes container `name` now; a missing one is no error.
    fn remove(&self, name: &str) -> Result<()>;
    /// Starts a container: `podman run -d ARGS` (`args` holds the `-d`).
    fn run_detached(&self, what: &str, args: &[String]) -> Result<()>;
    /// The host pid of container `name`'s init.
    fn init_pid(&self, name: &str) -> Result<u32>;
    /// What container `name` wrote to its log, for an error message.
    fn logs(&self, name: &str) -> String;
    /// Our images: every tag in our repository.
    fn images(&self) -> Result<Vec<StoredImage>>;
    /// The ID (`sha256:...`) of `image`, if the store has it.
    fn image_id(&self, image: &str) -> Result<Option<String>>;
    /// Removes image `id`; false if the engine refused (a container uses it).
    fn remove_image(&self, id: &str) -> bool;
    /// Ends rootless Podman's idle pause process; whether one was ended.
    fn end_pause_process(&self) -> Result<bool>;
}

impl Engine for Podman {
    fn containers(&self) -> Result<Vec<Listed>> {
        let filter = format!("label={}=1", crate::container::LABEL);
        let json = self.check(
            "listing containers",
            ["ps", "--all", "--filter", &filter, "--format", "json"],
        )?;
        list::parse(&json)
    }

    fn state(&self, name: &str) -> Result<State> {
        let format = "{{.State.Status}}";
        let out = self.output(["container", "inspect", "--format", format, name])?;
        if out.status.success() {
            let status = String::from_utf8_lossy(&out.stdout);
            return Ok(if status.trim() == "running" {
                State::Running
            } else {
                State::Stopped
            });
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("no such") {
            Ok(State::Missing)
        } else {
            Err(Error::Podman {
                message: format!("cannot inspect container {name}"),
                log: err.into_owned(),
            })
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            let out = self.output(["rm", "--force", "--time", "0", name])?;
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || err.contains("no such") {
                return Ok(());
            }
            // Podman's `rm --force` races a container that stops on its
            // own (its init just ended): it fails to kill what is already
            // stopped. Asked again, it removes the stopped container.
            tries += 1;
            if !err.contains("state improper") || tries == 3 {
                return Err(Error::Podman {
                    message: format!("cannot remove container {name}"),
                    log: err.into_owned(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn run_detached(&self, what: &str, args: &[String]) -> Result<()> {
        self.check(what, args).map(drop)
    }

    fn init_pid(&self, name: &str) -> Result<u32> {
        let out = self.output(["container", "inspect", "--format", "{{.State.Pid}}", name])?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|&pid| pid != 0)
            .ok_or_else(|| Error::Podman {
                message: format!("warm container {name} did not start"),
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
    }

    fn logs(&self, name: &str) -> String {
        self.output(["logs", name])
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    }

    fn images(&self) -> Result<Vec<StoredImage>> {
        listing::parse(&self.check("listing images", ["images", "--format", "json"])?)
    }

    fn image_id(&self, image: &str) -> Result<Option<String>> {
        let out = self.output(["image", "inspect", "--format", "{{.Id}}", image])?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !id.is_empty()).then(|| {
            if id.starts_with("sha256:") {
                id
            } else {
                format!("sha256:{id}")
            }
        }))
    }

    fn remove_image(&self, id: &str) -> bool {
        self.check("removing an image", ["rmi", id]).is_ok()
    }

    fn end_pause_process(&self) -> Result<bool> {
        Podman::end_pause_process(self)
    }
}

#[cfg(test)]
pub mod fake {
    //! An engine that answers from a table and records each call.

    use std::cell::RefCell;

    use super::*;

    #[derive(Debug, Default)]
    pub struct Recording {
        pub containers: RefCell<Vec<Listed>>,
        pub images: RefCell<Vec<StoredImage>>,
        /// What `run_detached` fails with (Podman's stderr), once each.
        pub run_fails: RefCell<Vec<String>>,
        /// The pid `init_pid` reports for a started container.
        pub init: Option<u32>,
        /// Every call, as `verb name`.
        pub calls: RefCell<Vec<String>>,
    }

    impl Recording {
        pub fn with(containers: &[(&str, &str)]) -> Recording {
            let r = Recording::default();
            for (name, state) in containers {
                r.add(name, state, None);
            }
            r
        }

        pub fn add(&self, name: &str, state: &str, owner: Option<&str>) {
            self.containers.borrow_mut().push(Listed {
                name: name.into(),
                state: state.into(),
                image: "localhost/lectic-nix-sandbox:abc".into(),
                owner: owner.map(Into::into),
            });
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }

        /// The calls of one verb, by the name they were made with.
        pub fn called(&self, verb: &str) -> Vec<String> {
            self.calls()
                .iter()
                .filter_map(|c| c.strip_prefix(verb)?.strip_prefix(' ').map(Into::into))
                .collect()
        }

        fn note(&self, verb: &str, name: &str) {
            self.calls.borrow_mut().push(format!("{verb} {name}"));
        }
    }

    impl Engine for Recording {
        fn containers(&self) -> Result<Vec<Listed>> {
            self.note("containers", "");
            Ok(self.containers.borrow().clone())
        }

        fn state(&self, name: &str) -> Result<State> {
            self.note("state", name);
            Ok(
                match self.containers.borrow().iter().find(|c| c.name == name) {
                    Some(c) if c.running() => State::Running,
                    Some(_) => State::Stopped,
                    None => State::Missing,
                },
            )
        }

        fn remove(&self, name: &str) -> Result<()> {
            self.note("remove", name);
            self.containers.borrow_mut().retain(|c| c.name != name);
            Ok(())
        }

        fn run_detached(&self, what: &str, args: &[String]) -> Result<()> {
            let name = args
                .iter()
                .skip_while(|a| *a != "--name")
                .nth(1)
                .cloned()
                .unwrap_or_default();
            self.note("run", &name);
            if self.containers.borrow().iter().any(|c| c.name == name) {
                return Err(Error::Podman {
                    message: format!("{what} failed"),
                    log: format!("the container name \"{name}\" is already in use"),
                });
            }
            let mut fails = self.run_fails.borrow_mut();
            if !fails.is_empty() {
                return Err(Error::Podman {
                    message: format!("{what} failed"),
                    log: fails.remove(0),
                });
            }
            drop(fails);
            self.add(&name, "running", None);
            Ok(())
        }

        fn init_pid(&self, name: &str) -> Result<u32> {
            self.note("init_pid", name);
            self.init.ok_or_else(|| Error::failed("no init"))
        }

        fn logs(&self, name: &str) -> String {
            self.note("logs", name);
            String::new()
        }

        fn images(&self) -> Result<Vec<StoredImage>> {
            self.note("images", "");
            Ok(self.images.borrow().clone())
        }

        fn image_id(&self, image: &str) -> Result<Option<String>> {
            self.note("image_id", image);
            Ok(self
                .images
                .borrow()
                .iter()
                .find(|i| i.tags.iter().any(|t| t == image))
                .map(|i| i.id.clone()))
        }

        fn remove_image(&self, id: &str) -> bool {
            self.note("remove_image", id);
            let in_use = {
                let images = self.images.borrow();
                let tags = images.iter().find(|i| i.id == id).map(|i| i.tags.clone());
                tags.is_some_and(|t| {
                    self.containers
                        .borrow()
                        .iter()
                        .any(|c| t.contains(&c.image))
                })
            };
            if !in_use {
                self.images.borrow_mut().retain(|i| i.id != id);
            }
            !in_use
        }

        fn end_pause_process(&self) -> Result<bool> {
            self.note("end_pause_process", "");
            Ok(false)
        }
    }
}
