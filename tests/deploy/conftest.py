import pytest

from deploy_support import DEPLOY, OVERLAYS, environments, kustomizations, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Every kustomization under deploy/, rendered, by its folder relative to deploy/."""
    out = {str(folder.relative_to(DEPLOY)): render(folder) for folder in kustomizations()}
    assert out, "no kustomization under deploy/"
    return out


@pytest.fixture(scope="session")
def apps() -> dict[str, list[dict]]:
    """The app overlay of each environment (deploy/overlays/<env>), rendered."""
    envs = environments()
    assert {"staging", "production"} <= set(envs), envs
    return {env: render(OVERLAYS / env) for env in envs}
