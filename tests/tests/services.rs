//! The node serves gRPC health, server reflection (v1 and v1alpha), and names the missing
//! capability for services that arrive later.

#![allow(clippy::unwrap_used)]
use custos_proto::compute::v1 as compute_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_tests::TestNet;
use tonic::transport::Channel;

async fn channel(net: &TestNet) -> Channel {
    Channel::from_shared(net.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_custos_service_as_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let net = TestNet::start(0).await.unwrap();
    let mut health = HealthClient::new(channel(&net).await);
    for service in [
        "",
        "custos.ledger.v1.LedgerService",
        "custos.consent.v1.ConsentService",
        "custos.access.v1.AccessService",
        "custos.audit.v1.AuditService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of `{service}`: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "`{service}`");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.v1.Nothing".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_the_custos_services() {
    let net = TestNet::start(0).await.unwrap();
    let ch = channel(&net).await;

    use tonic_reflection::pb::v1;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1: not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "custos.ledger.v1.LedgerService",
        "custos.consent.v1.ConsentService",
        "custos.access.v1.AccessService",
        "custos.audit.v1.AuditService",
        "custos.vault.v1.VaultService",
        "custos.compute.v1.ComputeService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "v1 lacks {expected}: {names:?}"
        );
    }

    use tonic_reflection::pb::v1alpha;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "custos.ledger.v1.LedgerService".into(),
            ),
        ),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        answer.message_response
    else {
        panic!("v1alpha: no file descriptor for the ledger service");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_unimplemented_for_the_vault_and_compute_services_naming_who_serves_them() {
    let net = TestNet::start(0).await.unwrap();
    let ch = channel(&net).await;
    let mut compute = compute_pb::compute_service_client::ComputeServiceClient::new(ch.clone());
    let e = compute
        .explain(compute_pb::ExplainRequest {
            query: "COUNT".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(
        e.message().contains("custos compute run"),
        "{}",
        e.message()
    );

    let mut vault =
        custos_proto::vault::v1::vault_service_client::VaultServiceClient::new(ch.clone());
    let e = vault
        .list_records(ledger_pb::SignedRead::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    assert!(e.message().contains("custos vault run"), "{}", e.message());

    net.stop().await.unwrap();
}
