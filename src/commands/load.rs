//! `load`: read each file into the job store and print what each gave.

use super::*;

pub(super) async fn load_files(
    store: &AnyStore,
    db: &Location,
    args: &LoadArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let opts = InputOptions {
        format: args.format,
        column: args.column.clone(),
        sheet: args.sheet.clone(),
        encoding: args.encoding,
    };
    let mut reports = Vec::new();
    for file in &args.files {
        let report = crate::load::load_file(store, file, &opts).await?;
        put!("{}", report.render())?;
        reports.push(report);
    }
    if !quiet {
        if reports.len() > 1 {
            let valid: u64 = reports.iter().map(|r| r.valid).sum();
            let queued: u64 = reports.iter().map(|r| r.queued).sum();
            let rejected: u64 = reports.iter().map(|r| r.rejected_total()).sum();
            say!(
                "total: {queued} new ISBNs queued, {} already known, {rejected} rejected",
                valid - queued
            )?;
        }
        say!("jobs are in {db}; `isbn-crawler crawl` fetches them")?;
    }
    Ok(load_exit_code(&reports))
}

/// Loading succeeds unless a source could not be read (at all, or only up to damage part-way:
/// what came before it is loaded), or nothing held a valid ISBN.
pub(super) fn load_exit_code(reports: &[SourceReport]) -> ExitCode {
    let valid: u64 = reports.iter().map(|r| r.valid).sum();
    let unreadable = reports.iter().any(|r| r.problem.is_some());
    if valid == 0 || unreadable {
        ExitCode::NoInput
    } else {
        ExitCode::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_exit_codes() {
        let ok = SourceReport {
            valid: 3,
            queued: 1,
            ..SourceReport::default()
        };
        let empty = SourceReport {
            problem: Some("the input is empty".into()),
            ..SourceReport::default()
        };
        assert_eq!(load_exit_code(std::slice::from_ref(&ok)), ExitCode::Success);
        assert_eq!(
            load_exit_code(std::slice::from_ref(&empty)),
            ExitCode::NoInput
        );
        assert_eq!(load_exit_code(&[ok.clone(), empty]), ExitCode::NoInput);
        let cut_short = SourceReport {
            problem: Some("MARCXML: the file ends inside an element".into()),
            ..ok
        };
        assert_eq!(load_exit_code(&[cut_short]), ExitCode::NoInput);
    }
}
