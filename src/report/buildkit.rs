//! BuildKit's `--progress plain` output, read for the live view: the step that
//! runs now (`#5 [build 2/3] RUN make`), and whether it was `CACHED` or `DONE`,
//! instead of whichever output line came last.
//!
//! ```text
//! #5 [build 2/3] RUN make
//! #5 0.412 cc -O2 …
//! #5 DONE 3.1s
//! #6 [stage-1 2/2] COPY --from=build /out /out
//! #6 CACHED
//! ```

use std::collections::HashMap;

/// The titles of the vertices seen in one build's output, by number.
#[derive(Debug, Default)]
pub struct BuildProgress {
    titles: HashMap<u32, String>,
}

impl BuildProgress {
    /// What the live view shows for `line`, when it is BuildKit's.
    pub fn detail(&mut self, line: &str) -> Option<String> {
        let rest = line.strip_prefix('#')?;
        let (n, rest) = rest.split_once(' ')?;
        let n: u32 = n.parse().ok()?;
        let rest = rest.trim_end();
        if rest.starts_with('[') {
            self.titles.insert(n, rest.to_string());
            return Some(rest.to_string());
        }
        let title = self.titles.get(&n)?;
        if rest == "CACHED" {
            return Some(format!("{title} CACHED"));
        }
        if let Some(t) = rest.strip_prefix("DONE ") {
            return Some(format!("{title} done in {t}"));
        }
        if rest.starts_with("ERROR") {
            return Some(format!("{title} {rest}"));
        }
        // `#5 0.412 output…`: the step's own output, under its title.
        let (time, out) = rest.split_once(' ')?;
        time.parse::<f64>().ok()?;
        Some(format!("{title}: {}", out.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_their_output_and_their_end_are_shown_under_their_title() {
        let mut p = BuildProgress::default();
        assert_eq!(
            p.detail("#1 [internal] load build definition from Dockerfile")
                .as_deref(),
            Some("[internal] load build definition from Dockerfile")
        );
        assert_eq!(
            p.detail("#5 [build 2/3] RUN make").as_deref(),
            Some("[build 2/3] RUN make")
        );
        assert_eq!(
            p.detail("#5 0.412 cc -O2 main.c").as_deref(),
            Some("[build 2/3] RUN make: cc -O2 main.c")
        );
        assert_eq!(
            p.detail("#5 DONE 3.1s").as_deref(),
            Some("[build 2/3] RUN make done in 3.1s")
        );
        assert_eq!(
            p.detail("#6 [stage-1 2/2] COPY --from=build /out /out"),
            Some("[stage-1 2/2] COPY --from=build /out /out".into())
        );
        assert_eq!(
            p.detail("#6 CACHED").as_deref(),
            Some("[stage-1 2/2] COPY --from=build /out /out CACHED")
        );
        assert_eq!(
            p.detail("Step 2/3 : RUN make"),
            None,
            "the classic builder's lines are not BuildKit's"
        );
        assert_eq!(
            p.detail("#9 sha256:abc 1.2MB / 3MB"),
            None,
            "a vertex never titled"
        );
        assert_eq!(p.detail("#1 transferring dockerfile: 2B done"), None);
    }
}
