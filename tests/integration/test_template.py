"""template.yaml: lint, structure, least privilege, and the SAM transform (`sam validate --lint`).

cfn-lint runs from the project venv. The SAM CLI lives in its own venv (`make sam-venv` -> .venv-sam),
because installing aws-sam-cli into .venv would downgrade boto3 and pydantic; the tests that need it skip
when it is missing, unless MESP_REQUIRE_SAM=1 (then they fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM_VENV = ROOT / ".venv-sam" / "bin"
# Actions AWS only authorises on Resource "*" (no resource-level permissions). Reviewed; nothing else may use "*".
STAR_RESOURCE_OK = {"cloudwatch:GetMetricData", "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScheduledActions"}


@pytest.fixture(scope="module")
def template() -> dict:
    from cfnlint.decode import decode

    tmpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return tmpl


def resources(tmpl, kind):
    return {k: v for k, v in tmpl["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_is_clean():
    from cfnlint.api import ManualArgs, lint_file

    assert lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "eu-west-1"])) == []


def test_functions_handlers_and_layers(template):
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12" and glob["Tracing"] == "Active"
    assert glob["Layers"] == [{"Ref": "RuntimeLayer"}, {"Ref": "CoreLayer"}]
    fns = resources(template, "AWS::Serverless::Function")
    assert set(fns) == {"ForecastFunction", "PlannerFunction", "RetrainFunction"}
    for fn in fns.values():
        code = ROOT / fn["Properties"]["CodeUri"]
        module, func = fn["Properties"]["Handler"].split(".")
        assert f"def {func}" in (code / f"{module}.py").read_text() or func in (code / f"{module}.py").read_text()
    assert fns["ForecastFunction"]["Properties"]["AutoPublishAlias"] == "live"
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {"POST /forecast", "GET /model", "GET /health"}
    integration = template["Resources"]["ForecastIntegration"]["Properties"]
    assert integration["IntegrationUri"] == {"Ref": "ForecastFunctionAliaslive"}
    assert integration["PayloadFormatVersion"] == "2.0"
    layers = resources(template, "AWS::Serverless::LayerVersion")
    assert layers["RuntimeLayer"]["Metadata"]["BuildMethod"] == "python3.12"
    assert layers["CoreLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-CoreLayer:" in (ROOT / "layers/core/Makefile").read_text()


def test_runtime_layer_matches_the_serve_extra():
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    wanted = {d.split("[")[0].split(">")[0].split("=")[0].strip().lower() for d in extra} - {"boto3"}
    lines = [ln.strip() for ln in (ROOT / "layers/runtime/requirements.txt").read_text().splitlines()]
    listed = {ln.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
              for ln in lines if ln and not ln.startswith("#")}
    assert wanted <= listed and {"numpy", "pydantic"} <= listed
    assert not listed & {"torch", "tslearn", "optuna", "pandas", "scipy", "matplotlib", "sagemaker"}


def test_schedules_have_explicit_names_and_match_events(template):
    fns = resources(template, "AWS::Serverless::Function")
    for fn, event_file in [("PlannerFunction", "scheduler_planner.json"), ("RetrainFunction", "scheduler_retrain.json")]:
        schedules = [e for e in fns[fn]["Properties"]["Events"].values() if e["Type"] == "ScheduleV2"]
        assert len(schedules) == 1
        props = schedules[0]["Properties"]
        assert "Fn::Sub" in props["Name"] and props["ScheduleExpressionTimezone"] == "UTC"
        assert json.loads(props["Input"]) == json.loads((ROOT / "events" / event_file).read_text())


def test_model_bucket_is_private_encrypted_versioned_tls_only(template):
    bucket = template["Resources"]["ModelBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    (stmt,) = template["Resources"]["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_api_auth_is_on_by_default_and_required_outside_dev(template):
    params = template["Parameters"]
    assert params["ApiAuth"]["Default"] == "AWS_IAM" and params["Stage"]["Default"] == "dev"
    rule = template["Rules"]["AuthOutsideDev"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Stage"}, "dev"]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiAuth"}, "NONE"]}]}
    auth_type = {"Fn::If": ["UseJwt", "JWT", {"Fn::If": ["UseIam", "AWS_IAM", "NONE"]}]}
    for route in resources(template, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == auth_type
    assert template["Resources"]["JwtAuthorizer"]["Condition"] == "UseJwt"


def allow_statements(template):
    for name, fn in resources(template, "AWS::Serverless::Function").items():
        for policy in fn["Properties"].get("Policies", []):
            assert isinstance(policy, dict) and "Statement" in policy, f"{name}: inline statements only"
            for stmt in policy["Statement"]:
                if stmt["Effect"] == "Allow":
                    yield name, stmt


def test_least_privilege(template):
    seen = 0
    for name, stmt in allow_statements(template):
        seen += 1
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        assert all("*" not in a for a in actions), f"{name}/{stmt['Sid']}: wildcard action"
        res = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        if "*" in res:
            assert set(actions) <= STAR_RESOURCE_OK, f"{name}/{stmt['Sid']}: Resource '*' for {actions}"
    assert seen >= 8


@pytest.fixture(scope="module")
def sam():
    exe = SAM_VENV / "sam"
    if not exe.exists():
        if os.environ.get("MESP_REQUIRE_SAM") == "1":
            pytest.fail("MESP_REQUIRE_SAM=1 but .venv-sam/bin/sam is missing (make sam-venv)")
        pytest.skip("aws-sam-cli not installed in .venv-sam (make sam-venv)")
    return exe


@pytest.mark.slow
def test_sam_validate_lint(sam):
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    out = subprocess.run([str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is a valid SAM Template" in out.stdout + out.stderr


TRANSFORM = r"""
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
tmpl = yaml_parse(open(sys.argv[1]).read())
for res in tmpl["Resources"].values():
    props = res.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if key in props:
            props[key] = "s3://bucket/code.zip"
class Loader:
    def load(self): return {}
out = transform(tmpl, {"Stage": "prod", "ApiAuth": "AWS_IAM"}, Loader())
print(json.dumps(out["Resources"], default=str))
"""


@pytest.mark.slow
def test_sam_transform_creates_the_expected_resources(sam):
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([str(SAM_VENV / "python"), "-c", TRANSFORM, str(TEMPLATE)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    kinds = [r["Type"] for r in res.values()]
    assert kinds.count("AWS::Scheduler::Schedule") == 2
    assert kinds.count("AWS::Lambda::Alias") == 1 and kinds.count("AWS::Lambda::LayerVersion") == 2
    assert "AWS::ApiGatewayV2::Api" in kinds and "AWS::Events::Rule" in kinds
    routes = [r for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert len(routes) == 3
    names = sorted(json.dumps(r["Properties"]["Name"]) for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule")
    assert names == ['{"Fn::Sub": "${AWS::StackName}-planner"}', '{"Fn::Sub": "${AWS::StackName}-retrain"}']


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
