export { startScriptedModel, type ScriptedModel, type ScriptedModelOptions, type ScriptedRequest } from './server.ts';
export { loadScript, parseScript, ScriptError, type Script, type ScriptTurn, type ScriptToolCall } from './script.ts';
export { MODEL_ID } from './protocol.ts';
