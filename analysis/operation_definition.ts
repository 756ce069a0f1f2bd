/**
 * @module The OperationDefinition of `ImagingStudy/[id]/$analyze`, stored at start as
 * `OperationDefinition/ImagingStudy-analyze` so that the CapabilityStatement's `definition`
 * resolves on this server (its parameters are those `analyze.ts` reads).
 */
import type { OperationDefinition } from "@medplum/fhirtypes";

export const ANALYZE_DEFINITION_ID = "ImagingStudy-analyze";

export function analyzeDefinition(baseUrl: string): OperationDefinition {
  const code = (name: string, documentation: string, values?: string) => ({
    name,
    use: "in" as const,
    min: 0,
    max: "1",
    type: "code",
    documentation: values ? `${documentation} (${values})` : documentation,
  });
  return {
    resourceType: "OperationDefinition",
    id: ANALYZE_DEFINITION_ID,
    url: `${baseUrl}/OperationDefinition/${ANALYZE_DEFINITION_ID}`,
    name: "Analyze",
    title: "AI analysis of an imaging study",
    status: "active",
    kind: "operation",
    affectsState: true,
    code: "analyze",
    description: "Queues an AI analysis of the study's images and answers 202 with the Task " +
      "that tracks it (Content-Location: the Task). The same request for the same image content " +
      "returns the Task already running. Its results are a DiagnosticReport with Observations, " +
      "a DICOM SEG and SR stored in the study, and a Provenance.",
    resource: ["ImagingStudy"],
    system: false,
    type: false,
    instance: true,
    parameter: [
      {
        ...code("model", "The installed model's name; default: the first installed"),
        type: "string",
      },
      code("profile", "How thorough the analysis is", "fast | standard | research"),
      {
        name: "threshold",
        use: "in",
        min: 0,
        max: "1",
        type: "decimal",
        documentation: "The detection threshold, between 0 and 1; default: the model's",
      },
      code("priority", "The queue's priority", "routine | stat"),
      {
        name: "return",
        use: "out",
        min: 1,
        max: "1",
        type: "Task",
        documentation: "The Task that tracks the analysis",
      },
    ],
  };
}
