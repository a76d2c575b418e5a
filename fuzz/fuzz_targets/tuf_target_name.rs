//! `trust::tuf::lookup`: target names. Invariants: for every valid repository name and tag,
//! the name built by each template splits back to that tag in that repository and to no tag in
//! any other repository; whatever string a TUF repository lists, `tag_of` returns only a valid
//! tag, and only one that builds back to the same name.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis::refs::{RepoName, Tag};
use portcullis::trust::tuf::lookup::{tag_of, target_name};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    repo: &'a str,
    other: &'a str,
    tag: &'a str,
    listed: &'a str,
}

const TEMPLATES: [&str; 2] = ["{repository}:{tag}", "{tag}"];

fuzz_target!(|inp: Input<'_>| {
    for t in TEMPLATES {
        if let (Ok(repo), Ok(tag)) = (inp.repo.parse::<RepoName>(), inp.tag.parse::<Tag>()) {
            let name = target_name(t, repo.as_str(), tag.as_str());
            assert_eq!(tag_of(t, repo.as_str(), &name), Some(tag.as_str()));
            if t != "{tag}"
                && let Ok(other) = inp.other.parse::<RepoName>()
                && other != repo
            {
                assert_eq!(tag_of(t, other.as_str(), &name), None, "{name} leaked into {other}");
            }
        }
        if let Ok(repo) = inp.repo.parse::<RepoName>()
            && let Some(tag) = tag_of(t, repo.as_str(), inp.listed)
        {
            assert!(tag.parse::<Tag>().is_ok());
            assert_eq!(target_name(t, repo.as_str(), tag), inp.listed);
        }
    }
});
