//! `depends_on`: unknown, self and duplicate dependencies, cycles (over
//! [`crate::graph::Dag`]), and `{image.X}` variables that need X as a dependency.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use crate::diagnostic::{did_you_mean, Problem};
use crate::graph::Dag;
use crate::spec::raw::RawImage;
use crate::spec::template::Template;
use crate::spec::Image;

use super::Validator;

/// `image → [(dependency, span of the entry)]`, in the file's order.
type DepEdges<'r> = BTreeMap<&'r str, Vec<(&'r str, Range<usize>)>>;

impl Validator<'_> {
    pub(super) fn check_dependencies(&mut self, raw: &[RawImage], images: &[Image]) {
        let all_names: BTreeSet<&str> = raw
            .iter()
            .filter_map(|r| r.name.as_ref())
            .map(|n| n.value.as_str())
            .collect();
        let mut edges: DepEdges<'_> = BTreeMap::new();
        for ri in raw {
            let Some(name) = &ri.name else { continue };
            let mut seen = BTreeSet::new();
            for d in &ri.depends_on {
                // (code, message, label, help) of a dependency that is not an edge.
                let wrong = if d.value == name.value {
                    Some((
                        "self-dependency",
                        format!("image `{}` depends on itself", d.value),
                        "itself",
                        "remove it from depends_on".to_string(),
                    ))
                } else if !all_names.contains(d.value.as_str()) {
                    let help =
                        did_you_mean(&d.value, all_names.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "images in this file: {}",
                                all_names.iter().copied().collect::<Vec<_>>().join(", ")
                            )
                        });
                    Some((
                        "unknown-dependency",
                        format!("unknown image `{}` in depends_on", d.value),
                        "no such image",
                        help,
                    ))
                } else if !seen.insert(d.value.as_str()) {
                    Some((
                        "duplicate-dependency",
                        format!("`{}` is listed twice in depends_on", d.value),
                        "duplicate",
                        "remove one".to_string(),
                    ))
                } else {
                    None
                };
                if let Some((code, message, label, help)) = wrong {
                    self.push(Problem::new(code, d.span.clone(), message, label).help(help));
                    continue;
                }
                edges
                    .entry(name.value.as_str())
                    .or_default()
                    .push((d.value.as_str(), d.span.clone()));
            }
        }
        self.dependency_cycles(&all_names, &edges);
        // `{image.X}`: X must be a dependency that has every arch the template is
        // rendered for (all of the image's, or one arch's for a per_arch arg).
        // By name: a search of the file per image would be quadratic in images.
        let raw_by_name: HashMap<&str, &RawImage> = raw
            .iter()
            .rev()
            .filter_map(|r| Some((r.name.as_ref()?.value.as_str(), r)))
            .collect();
        let by_name: HashMap<&str, &Image> =
            images.iter().rev().map(|i| (i.name.as_str(), i)).collect();
        for img in images {
            let Some(&ri) = raw_by_name.get(img.name.as_str()) else {
                continue;
            };
            let all: Vec<&str> = img.archs.iter().map(String::as_str).collect();
            let mut templates: Vec<(&Template, Vec<&str>)> = ri
                .args
                .iter()
                .map(|(_, t)| t)
                .chain(ri.labels.iter().map(|(_, t)| t))
                .chain(ri.cache_from.iter())
                .map(|t| (t, all.clone()))
                .collect();
            for o in &ri.per_arch {
                let Some(a) = self.arch_named(&o.arch.value) else {
                    continue;
                };
                let Some(a) = all.iter().copied().find(|x| *x == a) else {
                    continue;
                };
                templates.extend(o.args.iter().map(|(_, t)| (t, vec![a])));
            }
            for (t, for_archs) in templates {
                for (var, span) in t.vars() {
                    let Some(other) = var.strip_prefix("image.") else {
                        continue;
                    };
                    if other.is_empty() {
                        continue;
                    }
                    if !img.depends_on.iter().any(|d| d == other) {
                        let help = if all_names.contains(other) {
                            format!("add it: depends_on = [\"{other}\"], so it is built first")
                        } else {
                            did_you_mean(other, img.depends_on.iter().map(String::as_str))
                                .unwrap_or_else(|| {
                                    format!("`{other}` is not an image of this file")
                                })
                        };
                        self.push(
                            Problem::new(
                                "image-var-not-dependency",
                                span.clone(),
                                format!("`{{image.{other}}}` needs `{other}` in depends_on"),
                                "not a dependency",
                            )
                            .help(help),
                        );
                        continue;
                    }
                    if let Some(o) = by_name.get(other) {
                        let missing: Vec<&str> = for_archs
                            .iter()
                            .copied()
                            .filter(|a| !o.archs.iter().any(|x| x == a))
                            .collect();
                        if !missing.is_empty() {
                            self.push(
                                Problem::new("image-var-arch", span.clone(), format!("`{other}` is not built for {}", missing.join(", ")), "no such arch there")
                                    .help(format!("build `{other}` for every arch of `{}`, or narrow `{}`'s archs", img.name, img.name)),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Each cycle once, naming every member, at the entry that closes it. Images
    /// are searched in name order, their entries in the file's order.
    fn dependency_cycles(&mut self, names: &BTreeSet<&str>, edges: &DepEdges<'_>) {
        let names: Vec<&str> = names.iter().copied().collect();
        let index = |n: &str| names.binary_search(&n).ok().map(|i| i as u32);
        let mut spans = Vec::new();
        let mut pairs = Vec::new();
        for (&from, deps) in edges {
            for (to, span) in deps {
                if let (Some(a), Some(b)) = (index(from), index(to)) {
                    pairs.push((a, b));
                    spans.push(span.clone());
                }
            }
        }
        for cycle in Dag::from_edges(names.len(), &pairs).cycles() {
            let Some((&closing, along)) = cycle.edges.split_last() else {
                continue;
            };
            let name = |e: u32, end: fn((u32, u32)) -> u32| names[end(pairs[e as usize]) as usize];
            let from = |e: u32| name(e, |p| p.0);
            let mut circle: Vec<&str> = cycle.edges.iter().map(|&e| from(e)).collect();
            circle.push(name(closing, |p| p.1));
            let (n, d) = (from(closing), name(closing, |p| p.1));
            let mut p = Problem::new(
                "dependency-cycle",
                spans[closing as usize].clone(),
                format!("dependency cycle: {}", circle.join(" → ")),
                format!("`{n}` depends on `{d}`, closing the cycle"),
            )
            .help("an image cannot be built before itself: remove one of these depends_on entries");
            for &e in along {
                p = p.related(
                    spans[e as usize].clone(),
                    format!("`{}` depends on the next", from(e)),
                );
            }
            self.push(p);
        }
    }
}
