"""Lambda runtime executor that runs each execution environment as a local process.

LocalStack's default executor starts a Docker container per execution environment. This one
starts ``bootstrap.py`` with the interpreter in ``PAYPIPE_LAMBDA_PYTHON`` instead: the process
loads the handler from the function's unzipped code (and its layers' ``python/`` folders) and
talks to LocalStack's executor endpoint exactly like the container's runtime init does (ready,
then one response or error per invocation). Event source mappings, retries, batching and
redrive stay LocalStack's.

Environment of the LocalStack process:
  LAMBDA_RUNTIME_EXECUTOR=local-process   select this executor
  PAYPIPE_LAMBDA_PYTHON                   interpreter for the handlers (default: python3)
  PAYPIPE_LAMBDA_DYNAMODB_ENDPOINT        optional AWS_ENDPOINT_URL_DYNAMODB for the handlers
  PAYPIPE_LAMBDA_LOG_DIR                  where each environment's output goes
  PAYPIPE_LAMBDA_CLOCK_FILE               optional: the offset file that moves the functions'
                                          clock forward (see bootstrap.py)
"""

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.executor_endpoint import (
    ExecutorEndpoint,
    StatusErrorException,
)
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor
from localstack.utils.net import get_free_tcp_port

LOOPBACK = "127.0.0.1"
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
LOG_TAIL_BYTES = 16_000
# Passed through from the LocalStack process; everything else comes from the function.
INHERITED_VARIABLES = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "PAYPIPE_LAMBDA_CLOCK_FILE",
)


def _python() -> str:
    return os.environ.get("PAYPIPE_LAMBDA_PYTHON") or shutil.which("python3") or "python3"


def _log_dir() -> Path:
    path = Path(os.environ.get("PAYPIPE_LAMBDA_LOG_DIR") or Path(tempfile.gettempdir()) / "lambda-logs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _code_paths(function_version: FunctionVersion) -> tuple[Path, list[Path]]:
    code = function_version.config.code
    if code is None:
        raise NotImplementedError("image functions need the Docker executor")
    layers = [layer.code.get_unzipped_code_location() for layer in function_version.config.layers]
    return code.get_unzipped_code_location(), layers


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(
            id, container_address=LOOPBACK, container_port=get_free_tcp_port()
        )
        self.process: subprocess.Popen[bytes] | None = None
        name = function_version.id.function_name
        self.log_path = _log_dir() / f"{name}-{id}.log"

    def start(self, env_vars: dict[str, str]) -> None:
        self.executor_endpoint.start()
        task_root, layers = _code_paths(self.function_version)
        env = {key: os.environ[key] for key in INHERITED_VARIABLES if key in os.environ}
        env.update({key: str(value) for key, value in env_vars.items()})
        env.update(
            {
                "LAMBDA_TASK_ROOT": str(task_root),
                "PAYPIPE_LAYER_PATHS": os.pathsep.join(str(path) for path in layers),
                "PAYPIPE_EXECUTOR_PORT": str(self.executor_endpoint.container_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        dynamodb = os.environ.get("PAYPIPE_LAMBDA_DYNAMODB_ENDPOINT")
        if dynamodb:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed interpreter and script
                [_python(), str(BOOTSTRAP)],
                env=env,
                cwd=task_root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        threading.Thread(target=self._fail_startup_on_exit, daemon=True).start()
        self.executor_endpoint.wait_for_startup()

    def _fail_startup_on_exit(self) -> None:
        """A process that dies before it is ready fails the startup instead of hanging it."""
        process = self.process
        if process is None:
            return
        code = process.wait()
        future = self.executor_endpoint.startup_future
        if future is not None and not future.done():
            future.set_exception(
                StatusErrorException(f"runtime process exited with {code}", payload=self.get_logs().encode())
            )

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            self.executor_endpoint.shutdown()
        except Exception:  # noqa: BLE001,S110 - endpoint already gone
            pass

    def get_address(self) -> str:
        return LOOPBACK

    def get_endpoint_from_executor(self) -> str:
        return LOOPBACK

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{LOOPBACK}:{port}{self.executor_endpoint.get_endpoint_prefix()}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        return self.executor_endpoint.invoke(payload)

    def get_logs(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers:
            if layer.code:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return Path(_python()).exists() or shutil.which(_python()) is not None


class LocalProcessExecutorPlugin(RuntimeExecutorPlugin):
    name = "local-process"

    def load(self, *args: object, **kwargs: object) -> type[RuntimeExecutor]:
        return LocalProcessRuntimeExecutor
