//! `Spec::load` and `Spec::from_str_in`: read, parse with spans, expand the
//! environment, validate. They live here, beside the validator they call, so that
//! `spec` (the model) does not depend on `validate`.

use std::path::Path;

use crate::diagnostic::{Problem, SourceFile, SpecErrors};
use crate::environment::Environment;
use crate::spec::{raw, read_source, LoadError, Spec};

impl Spec {
    /// Load and validate a spec file with the given environment for `${NAME}`.
    pub fn load(path: &Path, env: &Environment) -> Result<Spec, LoadError> {
        let source = read_source(path)?;
        Spec::from_str_in(&source.text, &source.name, &source.dir, env).map(|mut s| {
            s.path = path.to_path_buf();
            s
        })
    }

    /// Validate spec text as if it were the file `name` in directory `dir`.
    pub fn from_str_in(
        text: &str,
        name: &str,
        dir: &Path,
        env: &Environment,
    ) -> Result<Spec, LoadError> {
        let source = SourceFile::new(name, text);
        let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let problems = syntax
                .iter()
                .map(|e| {
                    let span = e.span().unwrap_or(0..0);
                    Problem::new(
                        "toml-syntax",
                        span,
                        format!("TOML syntax error: {}", e.message().trim()),
                        "here",
                    )
                    .help("see https://toml.io for the syntax")
                })
                .collect();
            return Err(LoadError::Invalid(SpecErrors::new(&source, problems)));
        }
        let mut reader = raw::Reader::new(text, env);
        let raw = reader.read(root.get_ref());
        let mut spec = super::validate(raw, &source, dir, reader.problems).map_err(|problems| {
            if problems.is_empty() {
                LoadError::Internal("validation failed without a problem".into())
            } else {
                LoadError::Invalid(SpecErrors::new(&source, problems))
            }
        })?;
        spec.path = dir.join(crate::spec::FILE_NAME);
        Ok(spec)
    }
}
