"""The mock orchestrator's client side: the engine's rooms, acting for the signed-in user.

`session` (the user, the providers, connections, signed calls), `consent` (accounts and
OAuth), `payment` (payment tokens under the cap), `custody` (tokens, resources, revocation),
`catalog` (providers' catalogs) and `provisioning` (`add`). `mocks.orchestrator.engine`
wires them into one `Orchestrator`. Nothing here imports the server side: what the client
needs of it is the `OrchestratorServer` protocol (`_server`).
"""
