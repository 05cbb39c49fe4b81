//! Micro-benchmark: transform and validate one record, by payload kind.
//! Run by `cargo xtask bench`, or `cargo bench -p sluice-tests --bench transform`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // criterion's macros

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use sluice_models::{DataSource, Priority, StreamData};
use sluice_profiles::seed::StandardTransform;
use sluice_sim::{PayloadKind, payload_of_kind};
use validator::Validate;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One record of each source, of the given kind.
fn inputs(kind: PayloadKind) -> Vec<StreamData> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    DataSource::ALL
        .into_iter()
        .enumerate()
        .map(|(i, source)| StreamData {
            source,
            partition: 0,
            timestamp: 1_764_400_000.0,
            priority: Priority::Medium,
            data: payload_of_kind(source, kind, &mut rng),
            sequence_id: i as u64 + 1,
        })
        .collect()
}

fn transform_and_validate(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("transform_validate");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    for kind in [PayloadKind::WellFormed]
        .into_iter()
        .chain(PayloadKind::PROBLEMATIC)
    {
        let inputs = inputs(kind);
        let name = serde_json::to_value(kind).unwrap();
        let mut next = inputs.iter().cycle();
        group.bench_function(name.as_str().unwrap(), |bench| {
            bench.iter_batched(
                || next.next().unwrap().clone(),
                |input| {
                    let record = StandardTransform.apply(input, 1_764_400_001.0);
                    assert!(record.validate().is_ok());
                    record
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, transform_and_validate);
criterion_main!(benches);
