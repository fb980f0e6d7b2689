//! Criterion benchmarks for the wire-format core: filter normalization (the work on
//! every request before the cache is consulted), reading a JSON-RPC call's envelope
//! (the work on every JSON-RPC request), merge (the work on every miss) and the
//! compressed copies (once per fetch) with the per-request choice among them.
//!
//! Run: `cargo bench --bench core`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vcproxy::protocol::filter::{parse_api, parse_jsonrpc, parse_rest, Limits};
use vcproxy::protocol::jsonrpc::envelope::parse_call;
use vcproxy::protocol::merge::{
    merge, merge_parsed, parse_body, MergeOptions, ParsedBody, UpstreamBody,
};
use vcproxy::Family;

/// A 20-parameter `/rest` query in the repeated-key style, with escapes, as a
/// dashboard might send it.
fn query_20() -> String {
    let mut p = Vec::new();
    for s in [
        "com.vmware.esx.settings.clusters.software",
        "com.vmware.vcenter.vm_template.library_items",
        "com.vmware.vcenter.namespace_management.clusters",
        "com.vmware.appliance.update",
    ] {
        p.push(format!("filter_spec.services={s}"));
    }
    for st in ["RUNNING", "FAILED", "BLOCKED", "PENDING"] {
        p.push(format!("filter_spec.status={st}"));
    }
    for op in ["apply", "check", "scan", "deploy"] {
        p.push(format!("filter_spec.operations={op}"));
    }
    for u in [
        "VSPHERE.LOCAL%5CAdministrator",
        "VSPHERE.LOCAL%5Cautomation",
        "ops%40corp.example",
    ] {
        p.push(format!("filter_spec.users={u}"));
    }
    for i in 1..=2 {
        p.push(format!("filter_spec.targets.{i}.type=VirtualMachine"));
        p.push(format!("filter_spec.targets.{i}.id=vm-{}", 40 + i));
    }
    p.push("result_spec.return_all=true".into());
    assert_eq!(p.len(), 20);
    p.reverse();
    p.join("&")
}

fn body_20() -> String {
    r#"{"filter_spec":{"services":["com.vmware.esx.settings.clusters.software","com.vmware.vcenter.vm_template.library_items","com.vmware.vcenter.namespace_management.clusters","com.vmware.appliance.update"],"status":["RUNNING","FAILED","BLOCKED","PENDING"],"operations":["apply","check","scan","deploy"],"users":["VSPHERE.LOCAL\\Administrator","VSPHERE.LOCAL\\automation","ops@corp.example"],"targets":[{"type":"VirtualMachine","id":"vm-41"},{"type":"VirtualMachine","id":"vm-42"}]},"result_spec":{"return_all":true}}"#.to_string()
}

/// About 600 bytes of task info, `/rest` or `/api` shaped (params map differs).
fn info(i: usize, family: Family) -> String {
    let params = match family {
        Family::Rest => format!(
            r#"[{{"key":"cluster","value":{{"s":"domain-c{i}"}}}},{{"key":"image","value":{{"s":"ESXi-8.0U2-{i}"}}}}]"#
        ),
        Family::Api | Family::JsonRpc => {
            format!(r#"{{"cluster":{{"s":"domain-c{i}"}},"image":{{"s":"ESXi-8.0U2-{i}"}}}}"#)
        }
    };
    let info = format!(
        r#"{{"description":{{"args":[],"default_message":"Remediating cluster domain-c{i}","id":"com.vmware.esx.settings.apply","params":{params}}},"service":"com.vmware.esx.settings.clusters.software","operation":"apply","target":{{"type":"ClusterComputeResource","id":"domain-c{i}"}},"status":"RUNNING","cancelable":true,"start_time":"2026-11-27T10:13:05.651Z","progress":{{"total":100,"completed":{},"message":{{"args":[],"default_message":"Applying image","id":"com.vmware.esx.settings.progress"}}}}}}"#,
        i % 100
    );
    // The merge reads only a JSON-RPC entry's key: the Info's inside is opaque to it.
    match family {
        Family::JsonRpc => format!(r#"{{"STRUCTURE":{{"com.vmware.cis.task.info":{info}}}}}"#),
        _ => info,
    }
}

fn upstream_body(vc: usize, n: usize, family: Family) -> String {
    let mut out = String::new();
    let id = |i: usize| {
        format!(
            "{:08x}-160a-25fe-fd1e-e7526df80e0d:com.vmware.esx.settings.clusters.software",
            vc * 100_000 + i
        )
    };
    match family {
        Family::Rest => {
            out.push_str(r#"{"value":["#);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    r#"{{"key":"{}","value":{}}}"#,
                    id(i),
                    info(i, family)
                ));
            }
            out.push_str("]}");
        }
        Family::Api => {
            out.push('{');
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(r#""{}":{}"#, id(i), info(i, family)));
            }
            out.push('}');
        }
        Family::JsonRpc => {
            out.push_str(r#"{"jsonrpc":"2.0","id":"0","result":{"output":["#);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    r#"{{"STRUCTURE":{{"map-entry":{{"key":"{}","value":{}}}}}}}"#,
                    id(i),
                    info(i, family)
                ));
            }
            out.push_str("]}}");
        }
    }
    out
}

fn normalize(c: &mut Criterion) {
    let limits = Limits::default();
    let q = query_20();
    let body = body_20();
    // Both spell the same question.
    assert_eq!(
        parse_rest(Some(&q), b"", &limits).unwrap().key(),
        parse_api(Some("action=list"), body.as_bytes(), &limits)
            .unwrap()
            .key()
    );
    let mut g = c.benchmark_group("normalize");
    g.bench_function("rest_query_20_params", |b| {
        b.iter(|| parse_rest(Some(black_box(&q)), b"", &limits).unwrap().key())
    });
    g.bench_function("json_body_20_params", |b| {
        b.iter(|| {
            parse_api(Some("action=list"), black_box(body.as_bytes()), &limits)
                .unwrap()
                .key()
        })
    });
    // The same question as the SDK sends it in JSON-RPC: the envelope (read on every
    // request, hits included) and the typed input (read once per distinct input).
    let api_body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let input = vcproxy_testkit::typed::list_input(&api_body).to_string();
    let call = serde_json::json!({"jsonrpc":"2.0","method":"invoke","params":{
        "serviceId":"com.vmware.cis.tasks","operationId":"list",
        "input":serde_json::from_str::<serde_json::Value>(&input).unwrap(),
        "ctx":{"appCtx":{"opId":"e8b793bf-4eff-4848-8a5d-cede35a5cc2d"},
               "securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id",
                              "sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"0"})
    .to_string();
    assert_eq!(
        parse_jsonrpc(input.as_bytes(), &limits).unwrap().key(),
        parse_api(Some("action=list"), body.as_bytes(), &limits)
            .unwrap()
            .key()
    );
    g.bench_function("jsonrpc_envelope", |b| {
        b.iter(|| {
            parse_call(black_box(call.as_bytes()), None, None)
                .unwrap()
                .id
        })
    });
    g.bench_function("jsonrpc_input_20_params", |b| {
        b.iter(|| {
            parse_jsonrpc(black_box(input.as_bytes()), &limits)
                .unwrap()
                .key()
        })
    });
    g.finish();
}

fn merging(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge_10x1000");
    g.sample_size(30);
    for family in [Family::Rest, Family::Api, Family::JsonRpc] {
        let bodies: Vec<String> = (0..10).map(|vc| upstream_body(vc, 1000, family)).collect();
        let names: Vec<String> = (0..10).map(|vc| format!("vc{vc}")).collect();
        let inputs: Vec<UpstreamBody> = bodies
            .iter()
            .zip(&names)
            .map(|(b, n)| UpstreamBody {
                vcenter: n,
                body: b.as_bytes(),
            })
            .collect();
        let total: usize = bodies.iter().map(String::len).sum();
        let per_task = total / 10_000;
        assert!((550..=800).contains(&per_task), "{per_task} bytes per task");
        let opts = MergeOptions { max_tasks: None };
        assert_eq!(merge(family, &inputs, &opts).unwrap().tasks, 10_000);
        g.throughput(Throughput::Bytes(total as u64));
        g.bench_function(family.as_str(), |b| {
            b.iter(|| merge(family, black_box(&inputs), &opts).unwrap())
        });
    }
    g.finish();
}

/// The miss path's two steps, apart: reading one vCenter's 1000-task answer (done as
/// each answer lands) and merging three read answers (done after the slowest).
fn miss_steps(c: &mut Criterion) {
    let family = Family::Rest;
    let bodies: Vec<String> = (0..3).map(|vc| upstream_body(vc, 1000, family)).collect();
    let names = ["vc1", "vc2", "vc3"];
    let inputs: Vec<UpstreamBody> = bodies
        .iter()
        .zip(names)
        .map(|(b, n)| UpstreamBody {
            vcenter: n,
            body: b.as_bytes(),
        })
        .collect();
    let parsed: Vec<ParsedBody> = inputs
        .iter()
        .map(|i| parse_body(family, *i).unwrap())
        .collect();
    let opts = MergeOptions { max_tasks: None };
    let mut g = c.benchmark_group("miss_3x1000");
    g.sample_size(30);
    g.throughput(Throughput::Bytes(bodies[0].len() as u64));
    g.bench_function("parse_one_body", |b| {
        b.iter(|| parse_body(family, black_box(inputs[0])).unwrap())
    });
    g.throughput(Throughput::Bytes(
        bodies.iter().map(String::len).sum::<usize>() as u64,
    ));
    g.bench_function("merge_parsed_three", |b| {
        b.iter(|| merge_parsed(family, black_box(&inputs), &parsed, &opts).unwrap())
    });
    g.finish();
}

/// What issue 13 adds per fetch (the copies, once) and per request (choosing one;
/// a JSON-RPC head as a gzip member).
fn encoding(c: &mut Criterion) {
    use vcproxy::encoding::{encode, stored_member, Accepted, Encoders};
    let mut g = c.benchmark_group("encode");
    g.sample_size(30);
    // The simulator's task JSON (its `/api` list of every task): realistic text to
    // compress, unlike the merge benches' repetitive generated bodies.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for tasks in [100, 1000] {
        let body = rt.block_on(async {
            let config = vcproxy::sim::SimConfig {
                tasks,
                seed: 7,
                static_tasks: true,
                ..Default::default()
            };
            let sim = vcproxy::sim::start("127.0.0.1:0".parse().unwrap(), config)
                .await
                .unwrap();
            String::from_utf8(sim.tasks_api_json().to_vec()).unwrap()
        });
        let now = std::time::SystemTime::now();
        let all = encode(body.as_bytes(), now, Encoders::default());
        eprintln!(
            "{tasks} tasks: identity {} B, gzip {} B, zstd {} B",
            body.len(),
            all.gzip.as_ref().map_or(0, |b| b.len()),
            all.zstd.as_ref().map_or(0, |b| b.len())
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        for (name, encoders) in [
            (
                "gzip6",
                Encoders {
                    gzip: true,
                    zstd: false,
                },
            ),
            (
                "zstd6",
                Encoders {
                    gzip: false,
                    zstd: true,
                },
            ),
            (
                "tag_only",
                Encoders {
                    gzip: false,
                    zstd: false,
                },
            ),
        ] {
            g.bench_function(format!("{name}_{tasks}_tasks"), |b| {
                b.iter(|| encode(black_box(body.as_bytes()), now, encoders))
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("per_request");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("gzip, deflate, br, zstd"),
    );
    g.bench_function("accept_encoding", |b| {
        b.iter(|| Accepted::from_headers(black_box(&headers)).choose(Some(11_000), Some(10_000)))
    });
    let head = br#"{"jsonrpc":"2.0","id":"0","result":{"output":"#;
    g.bench_function("jsonrpc_head_gzip_member", |b| {
        b.iter(|| stored_member(black_box(head)))
    });
    g.finish();
}

criterion_group!(benches, normalize, merging, miss_steps, encoding);
criterion_main!(benches);
