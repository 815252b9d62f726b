// The type every file of dashboards/json/ must have: Grafana's published dashboard schema
// (@grafana/schema, the version of the Grafana in docker-compose.yml), with two changes, each
// the least that lets a valid dashboard through.
import type { AnnotationQuery, Dashboard, DataQuery } from '@grafana/schema';

// 1. String enums widened to the union of their values. JSON holds the value ("dashboards"), and
//    TypeScript never lets a string literal stand for a member of a string enum
//    (DashboardLinkType.Dashboards), even one with that very value; every other string stays
//    checked against the same set of values.
type Widen<T> = T extends string
  ? `${T}`
  : T extends readonly (infer E)[]
    ? Widen<E>[]
    : T extends object
      ? { [K in keyof T]: Widen<T[K]> }
      : T;

// 2. The annotations as the Prometheus datasource reads them. The schema leaves an annotation's
//    query to its datasource (the TQuery parameter of AnnotationQuery, DataQuery by default);
//    Grafana's Prometheus datasource runs `target.expr` over `target.interval` and reads the
//    event's title, text and tags from the annotation itself.
interface PrometheusAnnotationQuery extends DataQuery {
  expr: string;
  interval?: string;
}
interface PrometheusAnnotation extends AnnotationQuery<PrometheusAnnotationQuery> {
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

export type GrafanaDashboard = Widen<
  Omit<Dashboard, 'annotations'> & { annotations?: { list?: PrometheusAnnotation[] } }
>;
