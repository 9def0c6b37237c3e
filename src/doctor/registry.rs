//! The checks of the registries the plan pushes to: they answer `/v2/` (loopback
//! and insecure ones only: nothing else is contacted) and take the credentials.

use super::{Blame, Check, Doctor};
use crate::plan::{Plan, StepKind};
use crate::registry::auth::{self, Credentials, DockerConfigAuth};
use crate::registry::client::Registry;
use crate::registry::http::{self, Client};
use crate::registry::Scheme;
use crate::spec::reference;

impl Doctor<'_> {
    pub(super) fn registry_checks(&self, plan: &Plan, checks: &mut Vec<Check>) {
        let uses = |s: &crate::plan::Step| {
            matches!(
                s.kind(),
                StepKind::Push
                    | StepKind::ManifestCreate
                    | StepKind::ManifestPush
                    | StepKind::Verify
            )
        };
        let mut hosts: Vec<String> = plan.registries().to_vec();
        let mut hub = false;
        let refs = plan
            .steps()
            .iter()
            .filter(|s| uses(s))
            .filter_map(|s| s.reference().map(str::to_string))
            .chain(
                plan.steps()
                    .iter()
                    .flat_map(|s| s.external_needs())
                    .filter_map(|e| e.reference.as_deref().map(str::to_string)),
            );
        for r in refs {
            match reference::parse(&r).ok().and_then(|r| r.domain) {
                Some(d) => {
                    if !hosts.contains(&d) {
                        hosts.push(d);
                    }
                }
                None => hub = true,
            }
        }
        hosts.sort();
        if hub {
            checks.push(
                Check::warn("registry: images go to Docker Hub (their references name no registry)")
                    .fix("set [project] registry = \"registry.example.com/team\" (or MULTIARCH_REGISTRY in the starter file)"),
            );
        }
        if hosts.is_empty() && !hub {
            checks.push(Check::ok(
                "registry: this run pushes nothing and reads nothing from a registry",
            ));
            return;
        }
        let creds = Credentials::from_env(self.env);
        let client = Client::new(self.timeout);
        // The run's own registry client: basic or a bearer token, as the
        // registry's challenge asks.
        let registry = Registry::new(self.env, &plan.insecure_registries, self.timeout);
        for host in hosts {
            let scheme = Scheme::for_host(&host, &plan.insecure_registries);
            let applies = creds.as_ref().filter(|c| c.applies_to(&host));
            if scheme == Scheme::Https {
                checks.push(Check::ok(format!(
                    "registry {host}: HTTPS; not contacted by doctor (the first push checks it)"
                )));
                checks.push(self.credentials_check(&host, applies, None));
                continue;
            }
            match http::ping_v2(&client, scheme, &host, None) {
                Ok(200) => checks.push(Check::ok(format!("registry {host} answers http://{host}/v2/"))),
                Ok(401) => {
                    checks.push(Check::ok(format!(
                        "registry {host} answers http://{host}/v2/ (it needs a login)"
                    )));
                    let verified = applies.map(|_| registry.ping(&host));
                    checks.push(self.credentials_check(&host, applies, Some(verified)));
                }
                Ok(code) => checks.push(
                    Check::warn(format!("registry {host}: http://{host}/v2/ answers HTTP {code}"))
                        .detail("a registry answers 200 or 401 there; is this a registry?"),
                ),
                Err(e) => checks.push(
                    Check::fail(
                        format!("registry {host} does not answer at http://{host}/v2/: {e}"),
                        Blame::Environment,
                    )
                    .fix("start one (`docker-registry serve config.yml`, Debian's docker-registry package; in multiarch's own repository `cargo xtask devenv`), or point [project] registry at one that runs"),
                ),
            }
        }
        if let Some(c) = &creds {
            if let Some(r) = &c.registry {
                if !plan.registries().contains(r) {
                    checks.push(
                        Check::warn(format!(
                            "credentials: they are for {r}, which this plan does not push to; `run` logs in only with --login"
                        ))
                        .fix("set MULTIARCH_REGISTRY_LOGIN (or CI_REGISTRY) to the registry of [project] registry"),
                    );
                }
            }
        }
    }

    /// `verified`: `None` for a registry doctor does not contact; else what /v2/
    /// answered with the configured credentials (if any apply).
    pub(super) fn credentials_check(
        &self,
        host: &str,
        creds: Option<&Credentials>,
        verified: Option<Option<Result<u16, crate::registry::client::Error>>>,
    ) -> Check {
        match (creds, verified) {
            (Some(c), Some(Some(Ok(200)))) => Check::ok(format!(
                "credentials: {} is accepted by {host}; `run` logs in with --password-stdin",
                c.user
            )),
            (Some(c), Some(Some(Ok(code)))) => Check::fail(
                format!("credentials: {host} refuses {} (HTTP {code})", c.user),
                Blame::Environment,
            )
            .fix("check MULTIARCH_REGISTRY_USER / MULTIARCH_REGISTRY_PASSWORD (or CI_REGISTRY_USER / CI_REGISTRY_PASSWORD)"),
            (Some(c), Some(Some(Err(e)))) => Check::warn(format!(
                "credentials: could not check {} at {host}: {e}",
                c.user
            )),
            (Some(c), _) => Check::ok(format!(
                "credentials: {} for {host} from the environment; `run` logs in with --password-stdin",
                c.user
            )),
            (None, verified) => match auth::docker_config_auth(self.env, host) {
                Some(found) => {
                    let how = match found {
                        DockerConfigAuth::Helper(h) => format!("credential helper `{h}`"),
                        DockerConfigAuth::Login(_) => "`docker login`".to_string(),
                        DockerConfigAuth::Store(s) => {
                            format!("maybe: the credentials store `{s}` is not looked into")
                        }
                    };
                    Check::ok(format!("credentials: {host} is in the docker config ({how})"))
                }
                None => {
                    let what = format!("credentials: none for {host}");
                    let fix = format!("`docker login {host}`, or set MULTIARCH_REGISTRY_USER and MULTIARCH_REGISTRY_PASSWORD (GitLab: CI_REGISTRY_USER / CI_REGISTRY_PASSWORD / CI_REGISTRY)");
                    if verified.is_some() {
                        // The registry said 401: pushes will fail.
                        Check::fail(format!("{what}, and it needs a login"), Blame::Environment).fix(fix)
                    } else {
                        Check::warn(format!("{what}; pushes fail if it needs a login")).fix(fix)
                    }
                }
            },
        }
    }
}
